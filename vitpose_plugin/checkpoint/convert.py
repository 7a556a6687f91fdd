"""One conversion of any known checkpoint layout into the plugin's, applied once per load.

:func:`to_plugin_layout` detects the source layout, applies that layout's one converter
(:mod:`.official`, :mod:`.mmpretrain`, :mod:`.hf_vitpose`, :mod:`.transpose`,
:mod:`.tokenpose`), then fits the result to the target model: every ViT's position
grid and patch kernel, and per-dataset heads of a multi-head model.

:func:`convert_on_load` registers it as a load-state-dict pre-hook. The hook of the
outermost module that has one converts the whole state dict and marks it, so modules
inside (a ViT in an estimator) do not convert again; a ViT in a model without the hook
(MMPose's own estimator, ``init_cfg=Pretrained``) converts its own keys.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from . import hf_vitpose, mmpretrain, official, tokenpose, transpose
from .allowlist import CheckpointError, current_source
from .safe_load import unwrap_state_dict
from .vitpose_plus import heads_by_dataset

# detection order: the first layout whose keys match converts the file
LAYOUTS = {
    'transformers': hf_vitpose,
    'transpose': transpose,
    'tokenpose': tokenpose,
    'mmpretrain': mmpretrain,
    'official': official,
}
_CONVERTED = '_vitpose_plugin_converted'


def detect_layout(keys) -> str:
    """The source layout of a state dict's keys; ``'plugin'`` when none matches."""
    keys = list(keys)
    for name, layout in LAYOUTS.items():
        if layout.matches(keys):
            return name
    return 'plugin'


MAX_TOKENS = 2**20  # a 1024 x 1024 patch grid: 16384 x 16384 pixels at patch 16


def divisor_pairs(n: int) -> List[Tuple[int, int]]:
    """Every (h, w) with h * w == n, in O(sqrt(n))."""
    small = [h for h in range(1, math.isqrt(n) + 1) if n % h == 0]
    return sorted({(h, n // h) for h in small} | {(n // h, h) for h in small})


def infer_grid(num_tokens: int, like: Tuple[int, int], key: str = 'pos_embed'
               ) -> Tuple[int, int]:
    """Factor ``num_tokens`` into (h, w) with the aspect ratio closest to ``like``;
    :class:`CheckpointError` (naming the file and ``key``) for no tokens or more than
    :data:`MAX_TOKENS`."""
    if num_tokens == like[0] * like[1]:
        return tuple(like)
    if not 1 <= num_tokens <= MAX_TOKENS:
        raise CheckpointError(
            f'{current_source()}: {key} holds {num_tokens} patch positions; a ViT position '
            f'embedding has between 1 and {MAX_TOKENS} (plus its slot 0)')
    pairs = divisor_pairs(num_tokens)
    return min(pairs, key=lambda p: abs(math.log(p[0] / p[1]) - math.log(like[0] / like[1])))


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Sequence[int],
                     dst_grid: Sequence[int]) -> torch.Tensor:
    """Bicubically resize the patch part of a (1, 1+h*w, C) position embedding."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    slot, grid = pos_embed[:, :1], pos_embed[:, 1:]
    grid = grid.reshape(1, *src_grid, grid.shape[-1]).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(dst_grid), mode='bicubic',
                         align_corners=False)
    return torch.cat([slot, grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)], dim=1)


def fit_patch_kernel(weight: torch.Tensor, size: Sequence[int], how: str = 'pad') -> torch.Tensor:
    """A (C, 3, kh, kw) patch kernel made (C, 3, *size): ``'pad'`` zero-pads it centred
    (the ViTPose authors' default for MAE ViT-H/14's 14x14 kernels), ``'bicubic'``
    resizes it."""
    if how == 'pad' and all(s >= k for s, k in zip(size, weight.shape[-2:])):
        (ph, pw) = (s - k for s, k in zip(size, weight.shape[-2:]))
        return F.pad(weight, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    if how not in ('pad', 'bicubic'):
        raise ValueError(f"patch kernel fitting {how!r}: choose 'pad' or 'bicubic'")
    return F.interpolate(weight.float(), size=tuple(size), mode='bicubic',
                         align_corners=False).to(weight.dtype)


def fit_vit(state_dict: dict, prefix: str, grid: Sequence[int], patch: Sequence[int],
            kernel: str = 'pad') -> List[str]:
    """Fit a ViT's stored position grid and patch kernel (keys under ``prefix``) to a
    model's, in place; returns notes."""
    notes = []
    pos = state_dict.get(prefix + 'pos_embed')
    if pos is not None:
        if pos.dim() != 3 or pos.shape[0] != 1:
            raise CheckpointError(f'{current_source()}: {prefix}pos_embed has shape '
                                  f'{tuple(pos.shape)}; expected (1, 1 + patches, channels)')
        src = infer_grid(pos.shape[1] - 1, tuple(grid), prefix + 'pos_embed')
        if tuple(src) != tuple(grid):
            state_dict[prefix + 'pos_embed'] = resize_pos_embed(pos, src, grid)
            notes.append(f'resized pos_embed from a {src[0]}x{src[1]} to a '
                         f'{grid[0]}x{grid[1]} patch grid (bicubic)')
    weight = state_dict.get(prefix + 'patch_embed.proj.weight')
    if weight is not None and tuple(weight.shape[-2:]) != tuple(patch):
        state_dict[prefix + 'patch_embed.proj.weight'] = fit_patch_kernel(weight, patch, kernel)
        notes.append(f'fitted the patch kernel from {tuple(weight.shape[-2:])} to '
                     f'{tuple(patch)} ({"zero padding" if kernel == "pad" else kernel})')
    return notes


def fit_to_model(state_dict: dict, model: torch.nn.Module) -> Tuple[dict, List[str]]:
    """Fit a plugin-layout state dict to ``model``: ViT grids and kernels, and the heads
    of a multi-head model (``head`` / ``associate_heads.{j}`` -> ``heads.{dataset}``)."""
    from ..models.backbones.vit import ViT
    notes = []
    for path, module in model.named_modules():
        if isinstance(module, ViT):
            notes += fit_vit(state_dict, path + '.' if path else '', module.grid,
                             module.patch_size, module.patch_kernel_fit)
            module.fit_knowledge_token(state_dict, path + '.' if path else '')
    names = getattr(model, 'dataset_names', None)
    if names and isinstance(getattr(model, 'heads', None), torch.nn.ModuleDict) and any(
            k.startswith(('head.', 'associate_')) for k in state_dict):
        state_dict = heads_by_dataset(state_dict, names)
        notes.append(f'heads in dataset order {list(names)}')
    return state_dict, notes


def to_plugin_layout(state_dict: dict, model: Optional[torch.nn.Module] = None
                     ) -> Tuple[dict, List[str]]:
    """(state dict in the plugin's layout, notes) for a state dict of any known layout,
    fitted to ``model`` when one is given. Keys are relative to ``model``."""
    state_dict = dict(unwrap_state_dict(state_dict))
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    layout = detect_layout(state_dict)
    notes: List[str] = []
    if layout != 'plugin':
        state_dict, notes = LAYOUTS[layout].convert(state_dict, model)
    if model is not None:
        state_dict, fitted = fit_to_model(state_dict, model)
        notes += fitted
    return state_dict, notes


def _convert_hook(module, state_dict, prefix, *args):
    if getattr(state_dict, _CONVERTED, False):
        return  # an enclosing module converted the whole state dict
    mine = [k for k in state_dict if k.startswith(prefix)]
    try:
        converted, notes = to_plugin_layout(
            {k[len(prefix):]: state_dict.pop(k) for k in mine}, module)
    except CheckpointError:
        raise
    except (ValueError, KeyError) as e:  # name the file the weights came from
        raise CheckpointError(f'{current_source()}: {e.args[0] if e.args else e}') from None
    state_dict.update({prefix + k: v for k, v in converted.items()})
    try:
        setattr(state_dict, _CONVERTED, True)
    except AttributeError:  # a plain dict: conversion is idempotent, inner hooks re-check
        pass
    if notes:
        print_log(f'checkpoint ({type(module).__name__}): ' + '; '.join(notes),
                  logger='current')


def convert_on_load(module: torch.nn.Module) -> None:
    """Make ``module.load_state_dict`` (and MMEngine's loaders) accept every layout
    :func:`to_plugin_layout` knows."""
    module.register_load_state_dict_pre_hook(_convert_hook)
