"""The normalised image itself as the feature map: the "backbone" of a pure-transformer
model whose patch embedding lives in the head (TokenPose-T)."""
from typing import Tuple

import torch
from mmengine.model import BaseModule
from mmpose.registry import MODELS


@MODELS.register_module()
class ImageAsFeature(BaseModule):
    """No parameters. Shapes: (B, 3, H, W) -> ((B, 3, H, W), )."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        return (x, )
