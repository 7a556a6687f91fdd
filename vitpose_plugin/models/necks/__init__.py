from .pyramid_fusion import PyramidFusionNeck
from .transpose_encoder import TransPoseEncoder

__all__ = ['PyramidFusionNeck', 'TransPoseEncoder']
