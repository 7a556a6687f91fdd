from .tokenpose_head import TokenPoseHead

__all__ = ['TokenPoseHead']
