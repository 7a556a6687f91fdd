"""TransPose's transformer encoder over a CNN feature map (Yang et al., ICCV 2021).

A 1x1 conv reduces the CNN map to d channels, a fixed 2-D sine position encoding is
added to the queries and keys of every layer, and post-norm encoder layers (multi-head
attention, ReLU FFN) process the H*W tokens. The last layer's attention maps are kept
(``last_attention``: (B, H*W, H*W), averaged over heads) — TransPose's explanation of
which image positions each keypoint position depends on.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpose.registry import MODELS

from ..utils.position_encoding import sine_position_encoding


class EncoderLayer(nn.Module):
    """Post-norm layer: x = LN(x + MHA(x + pos, x + pos, x)); x = LN(x + FFN(x))."""

    def __init__(self, d, heads, ffn, dropout=0.1):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn, d))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, pos, keep_attention=False):
        qk = x + pos
        out, attn = self.attn(qk, qk, x, need_weights=keep_attention)
        x = self.norm1(x + self.drop1(out))
        return self.norm2(x + self.drop2(self.ffn(x))), attn


@MODELS.register_module()
class TransPoseEncoder(BaseModule):
    """Args:
        in_channels: channels of the CNN map (ResNet-50 layer2: 512; HRNet-W32
            highest branch: 32).
        embed_dims: d (256 for TP-R, 64/96 for TP-H-W32/W48).
        num_layers, num_heads, ffn_dims: the encoder (TP-R-A4: 4, 8, 1024).
        dropout: inside attention and FFN.

    Shapes:
        inputs: tuple whose last item is (B, C, H, W) -> ((B, d, H, W), ).
    """

    def __init__(self, in_channels: int, embed_dims: int = 256, num_layers: int = 4,
                 num_heads: int = 8, ffn_dims: int = 1024, dropout: float = 0.1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.reduce = nn.Conv2d(in_channels, embed_dims, kernel_size=1, bias=False)
        self.layers = nn.ModuleList(
            EncoderLayer(embed_dims, num_heads, ffn_dims, dropout) for _ in range(num_layers))
        self.embed_dims = embed_dims
        self.last_attention: Optional[torch.Tensor] = None
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        x = self.reduce(inputs[-1])
        b, d, h, w = x.shape
        pos = sine_position_encoding(d, h, w, device=x.device).to(x.dtype)[None]
        x = x.flatten(2).transpose(1, 2)  # (B, H*W, d)
        for i, layer in enumerate(self.layers):
            x, attn = layer(x, pos, keep_attention=i == len(self.layers) - 1)
        self.last_attention = attn.detach()
        return (x.transpose(1, 2).reshape(b, d, h, w), )
