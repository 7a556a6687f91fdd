from .strict_topdown import StrictTopdownPoseEstimator

__all__ = ['StrictTopdownPoseEstimator']
