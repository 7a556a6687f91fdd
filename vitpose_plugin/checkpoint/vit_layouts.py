"""Translate ViT backbone weights from the layouts people have into ours.

Three source layouts are recognised (keys relative to the backbone):

``official``  the ViTPose repository and MAE (timm naming)::

    patch_embed.proj.{weight,bias}  pos_embed (1, 1+N, C)  [cls_token]
    blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2
    last_norm (ViTPose) or norm (MAE's encoder norm, not used by ViTPose)

``mmpretrain``  MMPose-released ViTPose (mmpretrain ``VisionTransformer``)::

    patch_embed.projection  pos_embed (1, N, C) or (1, 1+N, C) with cls_token
    layers.{i}.ln1 / attn.qkv / attn.proj / ln2 / ffn.layers.0.0 / ffn.layers.1
    ln1 (final norm)

``plugin``  ours: the official layout with ``blocks`` renamed ``layers`` so that
MMPose's ``LayerDecayOptimWrapperConstructor`` finds the block depth.

Position embeddings always end up as (1, 1+H*W, C) where slot 0 is added to every
patch (official ViTPose). A layout without that slot gets a zero slot, which keeps
its outputs unchanged. A grid of another size is resized bicubically, and a patch
kernel of another size (MAE ViT-H/14) is resized to the model's.
"""
import math
import re
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

# Keys that pre-training checkpoints carry but a ViTPose backbone has no use for.
_PRETRAIN_ONLY = re.compile(r'^(cls_token|mask_token|norm\.|fc_norm\.|head\.|decoder|'
                            r'dist_token)')

_MMPRETRAIN_RULES = [
    (re.compile(r'^patch_embed\.projection\.'), 'patch_embed.proj.'),
    (re.compile(r'^layers\.(\d+)\.ln1\.'), r'layers.\1.norm1.'),
    (re.compile(r'^layers\.(\d+)\.ln2\.'), r'layers.\1.norm2.'),
    (re.compile(r'^layers\.(\d+)\.ffn\.layers\.0\.0\.'), r'layers.\1.mlp.fc1.'),
    (re.compile(r'^layers\.(\d+)\.ffn\.layers\.1\.'), r'layers.\1.mlp.fc2.'),
    (re.compile(r'^ln1\.'), 'last_norm.'),
]


def detect_layout(keys) -> Optional[str]:
    """Name the layout of backbone keys (relative to the backbone), or None."""
    keys = list(keys)
    if any(re.match(r'^blocks\.\d+\.', k) for k in keys):
        return 'official'
    if any(re.match(r'^layers\.\d+\.(ln1|ffn)\.', k) for k in keys):
        return 'mmpretrain'
    if any(re.match(r'^layers\.\d+\.(norm1|mlp)\.', k) for k in keys):
        return 'plugin'
    return None


def infer_grid(num_tokens: int, like: Tuple[int, int]) -> Tuple[int, int]:
    """Factor ``num_tokens`` into (h, w) with the aspect ratio closest to ``like``."""
    if num_tokens == like[0] * like[1]:
        return tuple(like)
    target = like[0] / like[1]
    best = None
    for h in range(1, num_tokens + 1):
        if num_tokens % h:
            continue
        w = num_tokens // h
        score = abs(math.log(h / w) - math.log(target))
        if best is None or score < best[0]:
            best = (score, (h, w))
    return best[1]


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Tuple[int, int],
                     dst_grid: Tuple[int, int]) -> torch.Tensor:
    """Bicubically resize the patch part of a (1, 1+h*w, C) position embedding."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    slot, grid = pos_embed[:, :1], pos_embed[:, 1:]
    c = grid.shape[-1]
    grid = grid.reshape(1, src_grid[0], src_grid[1], c).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid.float(), size=tuple(dst_grid), mode='bicubic', align_corners=False)
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat([slot, grid], dim=1)


def convert_vit_backbone(state_dict: Dict[str, torch.Tensor], prefix: str,
                         grid: Tuple[int, int],
                         patch_size: Tuple[int, int]) -> List[str]:
    """Rewrite the backbone keys under ``prefix`` into the plugin layout, in place.

    Args:
        state_dict: a (possibly whole-model) state dict; only keys starting
            with ``prefix`` are touched.
        prefix: where the backbone's keys start, e.g. ``'backbone.'`` or ``''``.
        grid: the model's stored patch grid (h, w).
        patch_size: the model's patch kernel (h, w).

    Returns:
        Human-readable notes on what was changed (empty when nothing was).
    """
    local = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
    layout = detect_layout(local)
    if layout is None:
        return []
    notes = [] if layout == 'plugin' else [f'converted the {layout} ViT layout']
    # In the official layout slot 0 of pos_embed is always there (ViTPose's added
    # slot, or MAE's cls position, which ViTPose adds the same way); mmpretrain
    # has a slot only when the model had a cls token.
    has_slot = layout != 'mmpretrain' or 'cls_token' in local
    # already in our layout (e.g. the estimator converted it before this backbone's
    # own hook runs): keep the keys, only the grid and kernel checks below remain
    for rel, full in (local.items() if layout != 'plugin' else ()):
        new = rel
        if layout == 'official':
            new = re.sub(r'^blocks\.', 'layers.', rel)
        elif layout == 'mmpretrain':
            for pattern, repl in _MMPRETRAIN_RULES:
                new = pattern.sub(repl, new)
        value = state_dict.pop(full)
        if _PRETRAIN_ONLY.match(new):
            notes.append(f'dropped {rel} (not part of a ViTPose backbone)')
            continue
        state_dict[prefix + new] = value

    pos_key = prefix + 'pos_embed'
    if pos_key in state_dict:
        pos = state_dict[pos_key]
        if not has_slot:
            pos = torch.cat([pos.new_zeros(1, 1, pos.shape[-1]), pos], dim=1)
            notes.append('added a zero slot 0 to pos_embed (leaves outputs unchanged)')
        src_grid = infer_grid(pos.shape[1] - 1, grid)
        if tuple(src_grid) != tuple(grid):
            notes.append(f'resized pos_embed from a {src_grid[0]}x{src_grid[1]} '
                         f'to a {grid[0]}x{grid[1]} patch grid (bicubic)')
            pos = resize_pos_embed(pos, src_grid, grid)
        state_dict[pos_key] = pos

    proj_key = prefix + 'patch_embed.proj.weight'
    if proj_key in state_dict:
        w = state_dict[proj_key]
        if tuple(w.shape[-2:]) != tuple(patch_size):
            notes.append(f'resized the patch kernel from {tuple(w.shape[-2:])} to '
                         f'{tuple(patch_size)} (bicubic)')
            state_dict[proj_key] = F.interpolate(
                w.float(), size=tuple(patch_size), mode='bicubic',
                align_corners=False).to(w.dtype)
    return notes
