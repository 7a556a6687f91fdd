"""Window, shifted-window and pooling-window self-attention for high-resolution ViTPose.

ViTPose paper, Table 5: with 1/8 features the token grid is 4x larger and full
attention's cost grows with its square. Attention inside non-overlapping windows is
linear in the number of tokens; two cheap ways give the windows back some context:

* shift: on alternate blocks the windows are shifted by half a window (Swin), with a
  mask that stops tokens from attending across the cyclic wrap;
* pool: every window's tokens are average-pooled into a summary token and the summary
  tokens of all windows are appended to the keys and values of each window.

``WindowAttention`` has exactly the parameters of the full ``Attention`` (``qkv`` and
``proj``), so a full-attention checkpoint loads unchanged.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .attention import Attention


def window_partition(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of the window -> (B * nW, wh * ww, C)."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c).transpose(2, 3)
    return x.reshape(-1, wh * ww, c)


def window_merge(x: torch.Tensor, window: Tuple[int, int], hw: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, wh * ww, C) -> (B, H, W, C)."""
    wh, ww = window
    h, w = hw
    c = x.shape[-1]
    x = x.view(-1, h // wh, w // ww, wh, ww, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


def window_mask(hw: Tuple[int, int], padded: Tuple[int, int], window: Tuple[int, int],
                shift: Tuple[int, int], device=None) -> Optional[torch.Tensor]:
    """Which keys each query may attend to, per window: (nW, L, L) bool, or None if all.

    Positions are those of the (padded, shifted) grid. A key is allowed when it is a
    real token (not padding) and lies in the same Swin region as the query, i.e. was
    not brought next to it by the cyclic shift.
    """
    (h, w), (hp, wp), (sh, sw) = hw, padded, shift
    if (h, w) == (hp, wp) and not (sh or sw):
        return None
    rows = torch.arange(hp, device=device)
    cols = torch.arange(wp, device=device)
    # original coordinates of each shifted position, to find the padding
    valid = (((rows + sh) % hp) < h)[:, None] & (((cols + sw) % wp) < w)[None, :]

    def region(idx, size, win, s):  # Swin's three slices along one axis
        if not s:
            return torch.zeros_like(idx)
        return (idx >= size - win).long() + (idx >= size - s).long()

    label = region(rows, hp, window[0], sh)[:, None] * 3 + region(cols, wp, window[1], sw)[None]
    label = window_partition(label[None, ..., None].float(), window)[..., 0]  # (nW, L)
    valid = window_partition(valid[None, ..., None].float(), window)[..., 0] > 0
    mask = (label[:, :, None] == label[:, None, :]) & valid[:, None, :]
    # padded queries (discarded later) still need one key to keep softmax finite
    return mask | torch.eye(mask.shape[-1], dtype=torch.bool, device=device)


class WindowAttention(Attention):
    """Multi-head self-attention inside windows of the token grid.

    Args:
        window_size: (h, w) of a window in tokens; the grid is padded (and the
            padding masked out) when it does not divide.
        shift: shift the windows by half a window (with Swin's mask).
        pool: append the average-pooled summary token of every window to each
            window's keys and values.
        Other args as :class:`Attention`.

    Shapes:
        x (B, H*W, C) with ``hw=(H, W)`` -> (B, H*W, C).
    """

    def __init__(self, embed_dims, num_heads, window_size=(8, 8), shift=False, pool=False,
                 qkv_bias=True, attn_drop=0.0, proj_drop=0.0, fused=True):
        super().__init__(embed_dims, num_heads, qkv_bias, attn_drop, proj_drop, fused)
        self.window_size = tuple(window_size)
        self.shift = shift
        self.pool = pool

    def extra_repr(self):
        return f'window_size={self.window_size}, shift={self.shift}, pool={self.pool}'

    def forward(self, x, hw):
        b, n, c = x.shape
        h, w = hw
        wh, ww = self.window_size
        hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
        # shifting a single window row/column would only cut it in two
        shift = (wh // 2 if self.shift and hp > wh else 0, ww // 2 if self.shift and wp > ww else 0)
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, wp - w, 0, hp - h))
        if any(shift):
            x = torch.roll(x, (-shift[0], -shift[1]), dims=(1, 2))
        windows = window_partition(x, (wh, ww))  # (B*nW, L, C)
        num_windows = windows.shape[0] // b
        mask = window_mask((h, w), (hp, wp), (wh, ww), shift, x.device)

        qkv = self.qkv(windows).reshape(-1, wh * ww, 3, self.num_heads, self.head_dims)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B*nW, heads, L, d)
        if self.pool:
            # mean of each window's real tokens; qkv is linear, so this equals
            # pooling the window's keys and values
            real = window_partition(
                F.pad(x.new_ones(1, h, w, 1), (0, 0, 0, wp - w, 0, hp - h)).roll(
                    (-shift[0], -shift[1]), dims=(1, 2)), (wh, ww))  # (nW, L, 1)
            pooled = (windows.view(b, num_windows, -1, c) * real).sum(2) / real.sum(1)
            kv = self.qkv(pooled)[..., c:].reshape(b, num_windows, 2, self.num_heads,
                                                   self.head_dims)
            kv = kv.permute(2, 0, 3, 1, 4)  # (2, B, heads, nW, d), shared by all windows
            k_p, v_p = (t.unsqueeze(1).expand(-1, num_windows, -1, -1, -1).reshape(
                -1, self.num_heads, num_windows, self.head_dims) for t in kv.unbind(0))
            k, v = torch.cat([k, k_p], 2), torch.cat([v, v_p], 2)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(num_windows, wh * ww, num_windows)], -1)
        if mask is not None:  # (nW, Lq, Lk) -> per (B*nW) window
            mask = mask[None, :, None].expand(b, -1, -1, -1, -1).reshape(
                -1, 1, *mask.shape[1:])
        out = self.attend(q, k, v, mask)  # (B*nW, heads, L, d)
        out = out.transpose(1, 2).reshape(-1, wh * ww, c)
        out = window_merge(out, (wh, ww), (hp, wp))
        if any(shift):
            out = torch.roll(out, shift, dims=(1, 2))
        out = out[:, :h, :w].reshape(b, n, c)
        return self.proj_drop(self.proj(out))
