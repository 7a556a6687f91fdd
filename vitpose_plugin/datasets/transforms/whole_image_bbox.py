"""Treat the whole image as one box (MAE pre-training without person crops)."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmpose.registry import TRANSFORMS


@TRANSFORMS.register_module()
class WholeImageBBox(BaseTransform):
    """Set ``bbox`` to the full image, (1, 4) xyxy, so that ``GetBBoxCenterScale``
    and ``TopdownAffine`` resize the whole picture (ViTPose Table 3, "no crop")."""

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        results['bbox'] = np.array([[0, 0, w, h]], dtype=np.float32)
        results['bbox_score'] = np.ones(1, dtype=np.float32)
        return results
