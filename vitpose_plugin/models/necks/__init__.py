from .pyramid_fusion import PyramidFusionNeck

__all__ = ['PyramidFusionNeck']
