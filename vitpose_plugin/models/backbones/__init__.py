from .image_as_feature import ImageAsFeature
from .truncated_hrnet import TruncatedHRNet
from .vit import ViT

__all__ = ['ImageAsFeature', 'TruncatedHRNet', 'ViT']
