"""Fixed 2-D position encodings.

* :func:`sine_position_encoding`: DETR's normalised sine encoding, which TransPose and
  TokenPose add to their visual tokens.
* :func:`sincos_position_embedding`: MAE's sine-cosine embedding of grid indices.
"""
import math
from typing import Tuple

import torch


def sine_position_encoding(d: int, h: int, w: int, temperature: float = 10000.0,
                           device=None) -> torch.Tensor:
    """(h*w, d), tokens row-major: channels [0, d/2) encode the row, [d/2, d) the
    column; positions are normalised to (0, 2*pi] and each half interleaves sin and cos
    (channel 2i: sin, 2i+1: cos, both at frequency temperature**(-4i/d))."""
    assert d % 4 == 0, 'the sine position encoding needs d divisible by 4'
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device) / h * 2 * math.pi
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device) / w * 2 * math.pi
    dim_t = temperature**(2 * (torch.arange(d // 2, device=device) // 2) / (d // 2))
    py, px = y[:, None] / dim_t, x[:, None] / dim_t  # (h, d/2), (w, d/2)
    py = torch.stack([py[:, 0::2].sin(), py[:, 1::2].cos()], dim=2).flatten(1)
    px = torch.stack([px[:, 0::2].sin(), px[:, 1::2].cos()], dim=2).flatten(1)
    return torch.cat([py[:, None].expand(h, w, -1), px[None].expand(h, w, -1)], -1).flatten(0, 1)


def sincos_position_embedding(dims: int, grid: Tuple[int, int]) -> torch.Tensor:
    """(1, h*w, dims) MAE's fixed embedding: [sin(y w), cos(y w), sin(x w), cos(x w)]
    with w = 10000**(-k / (dims/4)), k < dims/4, of integer grid positions."""
    assert dims % 4 == 0, 'sin-cos position embedding needs dims divisible by 4'
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing='ij')
    omega = 1.0 / 10000**(torch.arange(dims // 4, dtype=torch.float64) / (dims / 4))
    parts = []
    for pos in (ys.flatten(), xs.flatten()):
        out = pos[:, None] * omega[None]
        parts += [torch.sin(out), torch.cos(out)]
    return torch.cat(parts, dim=1).float()[None]
