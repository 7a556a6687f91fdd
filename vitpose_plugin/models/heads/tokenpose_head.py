"""TokenPose: keypoint tokens in a transformer over image patches (Li et al., ICCV 2021).

K learnable keypoint tokens are prepended to the visual tokens (patches of the CNN
feature map, or of the image for TokenPose-T, linearly projected). A 2-D sine position
encoding is added to the visual tokens before every layer ("sine-full"), the pre-norm
encoder mixes all tokens, and an MLP maps each output keypoint token to its heatmap.
TokenPose-L concatenates the keypoint tokens of several encoder stages before the MLP.

The loss, decoding and flip test are MMPose's ``HeatmapHead``'s.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS

from ..utils.position_encoding import sine_position_encoding


class TokenPoseBlock(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + FFN(LN(x)) with a GELU FFN.

    ``head_scale``: scale logits by head_dims**-0.5 (TokenPose-T/B/L) or by
    embed_dims**-0.5 (TokenPose-S, as in the authors' code).
    """

    def __init__(self, embed_dims, num_heads, ffn_dims, head_scale=True, dropout=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads if head_scale else embed_dims)**-0.5
        self.norm1 = nn.LayerNorm(embed_dims)
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=False)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = nn.Sequential(nn.Linear(embed_dims, ffn_dims), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_dims, embed_dims))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, keep_attention=False):
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.num_heads, -1).permute(
            2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d)
        attn = None
        if keep_attention:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
            out = attn @ v
            attn = attn.mean(1)
        else:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        x = x + self.drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        return x + self.drop(self.ffn(self.norm2(x))), attn


@MODELS.register_module()
class TokenPoseHead(HeatmapHead):
    """Args:
        in_channels: channels of the incoming map (TokenPose-S: 256, -B: 32 (HRNet-W32),
            -L: 48 (HRNet-W48), -T: 3 (the image)).
        out_channels: K, the number of keypoints (one token each).
        heatmap_size: (W, H) of the output heatmaps, the codec's heatmap size.
        patch_size: (ph, pw) patch of the incoming map per visual token (4x3 on the 1/4
            map, 16x12 on the image for -T).
        embed_dims, depth, num_heads, ffn_ratio: the encoder (TokenPose-S: 192, 12, 8, 3).
        num_stages: the encoder is cut into this many equal stages whose keypoint tokens
            are concatenated for the MLP (TokenPose-L: 3; others: 1). The position
            encoding is not re-added at the first layer of a stage (authors' code).
        hidden_dims: the MLP is LN -> Linear(hidden) -> LN -> Linear(H*W); ``None``: LN ->
            Linear(H*W) (TokenPose-L).
        head_scale: see ``TokenPoseBlock``.
        dropout: inside attention output and FFN.
        loss, decoder, init_cfg: as in ``HeatmapHead``.

    Shapes:
        feats: tuple whose last item is (B, C, h*ph, w*pw) -> (B, K, H, W).
        ``last_attention``: (B, K + h*w, K + h*w), the last layer's attention averaged
        over heads; rows 0..K-1 are the keypoint tokens. ``last_grid``: (h, w).
    """

    def __init__(self, in_channels: int, out_channels: int, heatmap_size: Sequence[int],
                 patch_size: Sequence[int] = (4, 3), embed_dims: int = 192, depth: int = 12,
                 num_heads: int = 8, ffn_ratio: int = 3, num_stages: int = 1,
                 hidden_dims: Optional[int] = 384, head_scale: bool = True,
                 dropout: float = 0.0,
                 loss: dict = dict(type='KeypointMSELoss', use_target_weight=True),
                 decoder: Optional[dict] = None,
                 init_cfg: Optional[dict] = [
                     dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
                     dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)]):
        super().__init__(in_channels, out_channels, deconv_out_channels=None,
                         final_layer=None, loss=loss, decoder=decoder, init_cfg=init_cfg)
        if depth % num_stages:
            raise ValueError(f'depth={depth} is not divisible by num_stages={num_stages}')
        self.heatmap_size = tuple(heatmap_size)
        self.patch_size = tuple(patch_size)
        self.stage_depth = depth // num_stages
        self.patch_embed = nn.Linear(in_channels * patch_size[0] * patch_size[1], embed_dims)
        self.keypoint_tokens = nn.Parameter(torch.zeros(1, out_channels, embed_dims))
        trunc_normal_(self.keypoint_tokens, std=0.02)
        self.layers = nn.ModuleList(
            TokenPoseBlock(embed_dims, num_heads, embed_dims * ffn_ratio, head_scale, dropout)
            for _ in range(depth))
        width, pixels = embed_dims * num_stages, heatmap_size[0] * heatmap_size[1]
        self.mlp_head = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, hidden_dims), nn.LayerNorm(hidden_dims),
            nn.Linear(hidden_dims, pixels)) if hidden_dims else nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, pixels))
        self.last_attention: Optional[torch.Tensor] = None
        self.last_grid: Optional[Tuple[int, int]] = None

    def patchify(self, x: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        """(B, C, h*ph, w*pw) -> (B, h*w, ph*pw*C) in the authors' order, and (h, w)."""
        b, c, hh, ww = x.shape
        ph, pw = self.patch_size
        if hh % ph or ww % pw:
            raise ValueError(f'TokenPoseHead: a {hh}x{ww} map is not divisible into '
                             f'{ph}x{pw} patches; choose patch_size to fit the input size')
        h, w = hh // ph, ww // pw
        x = x.reshape(b, c, h, ph, w, pw).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, h * w, ph * pw * c), h, w

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        patches, h, w = self.patchify(feats[-1])
        self.last_grid = (h, w)
        x = self.patch_embed(patches)
        k = self.keypoint_tokens.shape[1]
        pos = sine_position_encoding(x.shape[-1], h, w, device=x.device).to(x.dtype)[None]
        x = torch.cat([self.keypoint_tokens.expand(x.shape[0], -1, -1), x + pos], dim=1)
        stage_tokens = []
        for i, layer in enumerate(self.layers):
            if i % self.stage_depth:
                x = torch.cat([x[:, :k], x[:, k:] + pos], dim=1)
            x, attn = layer(x, keep_attention=i == len(self.layers) - 1)
            if (i + 1) % self.stage_depth == 0:
                stage_tokens.append(x[:, :k])
        self.last_attention = attn.detach()
        out = self.mlp_head(torch.cat(stage_tokens, dim=-1))  # (B, K, H*W)
        # final_layer is the identity; models/utils/fp32_heatmaps.py hooks it
        return self.final_layer(
            out.reshape(*out.shape[:2], self.heatmap_size[1], self.heatmap_size[0]))
