from .mae import ViTMAE

__all__ = ['ViTMAE']
