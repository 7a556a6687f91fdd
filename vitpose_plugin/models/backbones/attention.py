"""Multi-head self-attention of the ViT blocks (the official ViTPose formulation)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """Multi-head self-attention over all tokens.

    Args:
        embed_dims: token width C.
        num_heads: heads; C must divide evenly.
        qkv_bias: bias in the qkv projection.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
        fused: use torch's fused ``scaled_dot_product_attention`` (memory linear in
            the number of tokens); ``False`` computes softmax(q k^T / sqrt(d)) v
            explicitly, as the official code does (the attention matrix is stored
            for backward).

    Shapes:
        x (B, N, C) -> (B, N, C); ``hw`` (the token grid) is accepted and unused.

    Setting ``keep_attention = True`` (a run-time switch, used to draw attention maps)
    also computes the attention matrix explicitly and keeps it as ``last_attention``:
    (B, N, N), averaged over heads. The block's output is computed as without the switch,
    so recording never changes a prediction.
    """

    def __init__(self, embed_dims, num_heads, qkv_bias=True, attn_drop=0.0, proj_drop=0.0,
                 fused=True):
        super().__init__()
        assert embed_dims % num_heads == 0, (
            f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.fused = fused
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.keep_attention = False
        self.last_attention: Optional[torch.Tensor] = None

    def attend(self, q, k, v, mask: Optional[torch.Tensor] = None):
        """softmax(q k^T / sqrt(d) [masked]) v for (..., heads, L, d) tensors; ``mask``
        is boolean, True where a key may be attended to."""
        drop = self.attn_drop if self.training else 0.0
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        attn = (q * self.head_dims**-0.5) @ k.transpose(-2, -1)
        if mask is not None:
            attn = attn.masked_fill(~mask, float('-inf'))
        attn = F.dropout(attn.softmax(dim=-1), drop, self.training)
        return attn @ v

    def forward(self, x, hw=None):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dims)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d)
        if self.keep_attention:
            with torch.no_grad():
                attn = ((q * self.head_dims**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
            self.last_attention = attn.mean(1)
        x = self.attend(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))
