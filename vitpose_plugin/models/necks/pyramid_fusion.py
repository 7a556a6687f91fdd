"""Feature-pyramid fusion neck of Swin-Pose (Xiong et al., 2022).

A top-down pathway with lateral connections over the backbone's stages: starting
from the coarsest map, a 1x1 conv maps it to the next finer stage's channels,
bilinear upsampling matches that stage's resolution, and the two are fused;
repeated down to the finest stage (1/4 of the input for Swin), which feeds the
heatmap layer.
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpose.registry import MODELS


@MODELS.register_module()
class PyramidFusionNeck(BaseModule):
    """Args:
        in_channels: channels of the backbone's outputs, finest first
            (Swin-T: (96, 192, 384, 768)).
        fusion: ``'sum'`` (method A: element-wise sum, C_0 channels out) or
            ``'concat'`` (method B: channel concatenation, keeps all information;
            2 * C_0 channels out).

    Shapes:
        inputs: tuple of (B, C_i, H_i, W_i), finest first -> ((B, C_out, H_0, W_0), ).
    """

    def __init__(self, in_channels: Sequence[int], fusion: str = 'sum', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if fusion not in ('sum', 'concat'):
            raise ValueError(f"fusion must be 'sum' (A) or 'concat' (B), got {fusion!r}")
        self.in_channels = tuple(in_channels)
        self.fusion = fusion
        widths = [self.in_channels[-1]]  # channels of the fused map, coarsest first
        laterals = []
        for c in reversed(self.in_channels[:-1]):
            laterals.append(nn.Conv2d(widths[-1], c, kernel_size=1))
            widths.append(c if fusion == 'sum' else 2 * c)
        self.laterals = nn.ModuleList(laterals)  # laterals[0] acts on the coarsest map
        self.out_channels = widths[-1]

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'PyramidFusionNeck got {len(inputs)} maps for in_channels '
                             f'{self.in_channels}; set the backbone out_indices to all stages')
        x = inputs[-1]
        for lateral, finer in zip(self.laterals, reversed(inputs[:-1])):
            up = F.interpolate(lateral(x), size=finer.shape[-2:], mode='bilinear',
                               align_corners=False)
            x = finer + up if self.fusion == 'sum' else torch.cat([finer, up], dim=1)
        return (x, )
