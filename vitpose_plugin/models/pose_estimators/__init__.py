from .multi_head_topdown import MultiHeadTopdownPoseEstimator
from .strict_topdown import StrictTopdownPoseEstimator

__all__ = ['MultiHeadTopdownPoseEstimator', 'StrictTopdownPoseEstimator']
