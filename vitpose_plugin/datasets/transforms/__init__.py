from .whole_image_bbox import WholeImageBBox

__all__ = ['WholeImageBBox']
