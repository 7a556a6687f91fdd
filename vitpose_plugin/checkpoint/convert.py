"""Convert a whole ViTPose / MAE checkpoint into the plugin's layout."""
from typing import Optional, Sequence, Tuple

from .vit_layouts import convert_vit_backbone, detect_layout, infer_grid


def unwrap_state_dict(ckpt: dict) -> dict:
    """The weights of a checkpoint file: ``state_dict``, MAE's ``model``, or itself."""
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def convert_checkpoint(state_dict: dict,
                       img_size: Optional[Sequence[int]] = None,
                       patch_size: Optional[Sequence[int]] = None,
                       ratio: int = 1) -> Tuple[dict, list]:
    """Return (plugin-layout state dict, notes) for a pose or backbone state dict.

    Pose checkpoints (keys under ``backbone.``) also get their head renamed
    (``keypoint_head.`` -> ``head.``). Without ``img_size``/``patch_size`` the
    position grid and patch kernel are kept as they are.
    """
    sd = dict(state_dict)
    prefix = 'backbone.' if any(k.startswith('backbone.') for k in sd) else ''
    layout = detect_layout(k[len(prefix):] for k in sd if k.startswith(prefix))
    if layout is None:
        raise ValueError('no ViT backbone found: expected keys like '
                         f"'{prefix}blocks.0.attn.qkv.weight' (official/MAE) or "
                         f"'{prefix}layers.0.ln1.weight' (MMPose); first keys: "
                         f'{list(sd)[:5]}')
    kernel = sd.get(prefix + 'patch_embed.proj.weight',
                    sd.get(prefix + 'patch_embed.projection.weight'))
    patch = tuple(patch_size) if patch_size else tuple(kernel.shape[-2:])
    tokens = sd[prefix + 'pos_embed'].shape[1]
    has_slot = layout != 'mmpretrain' or prefix + 'cls_token' in sd
    if img_size:
        grid = tuple(s // p * ratio for s, p in zip(img_size, patch))
    else:  # keep the stored grid (pose grids are 4:3, MAE grids square)
        grid = infer_grid(tokens - int(has_slot), (4, 3) if prefix else (1, 1))
    notes = convert_vit_backbone(sd, prefix, grid, patch)
    renamed = {k: 'head.' + k[len('keypoint_head.'):] for k in sd if k.startswith('keypoint_head.')}
    for old, new in renamed.items():
        sd[new] = sd.pop(old)
    if renamed:
        notes.append('renamed keypoint_head.* to head.*')
    return sd, notes
