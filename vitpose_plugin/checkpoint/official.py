"""The official ViTPose layout, and MAE's (both use timm's ViT names).

Pose checkpoints of the ViTPose repository (keys relative to the model)::

    backbone.patch_embed.proj.{weight,bias}  backbone.pos_embed (1, 1+N, C)  backbone.cls_token
    backbone.blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2
    backbone.last_norm   keypoint_head.*   [ViTPose+: mlp.experts.{e}, associate_keypoint_heads.{j}]

MAE's encoder has the same block names without the ``backbone.`` prefix, a cls position
in slot 0 of ``pos_embed``, and parts ViTPose has no use for (``cls_token``, ``norm``,
``mask_token``, the decoder). Slot 0 of ``pos_embed`` is kept: official ViTPose adds it
to every patch, and does the same with MAE's cls position.
"""
import re
from typing import List, Tuple

_BLOCK = re.compile(r'^(backbone\.)?blocks\.\d+\.')
# pre-training parts that a ViTPose backbone does not have (relative to the backbone)
_PRETRAIN_ONLY = re.compile(r'^(cls_token|mask_token|dist_token|norm\.|fc_norm\.|decoder)')


def matches(keys) -> bool:
    return any(_BLOCK.match(k) for k in keys)


def convert(state_dict: dict, model=None) -> Tuple[dict, List[str]]:
    """Rename into the plugin layout (``blocks`` -> ``layers``, ``keypoint_head`` ->
    ``head``) and drop what ViTPose does not use."""
    prefix = 'backbone.' if any(k.startswith('backbone.blocks.') for k in state_dict) else ''
    out, dropped = {}, []
    for key, value in state_dict.items():
        if key.startswith(prefix):
            rel = key[len(prefix):]
            # a backbone-only file (MAE) may carry a classifier 'head.'
            if _PRETRAIN_ONLY.match(rel) or (not prefix and rel.startswith('head.')):
                dropped.append(rel)
                continue
            key = prefix + re.sub(r'^blocks\.', 'layers.', rel)
        key = re.sub(r'^keypoint_head\.', 'head.', key)
        key = re.sub(r'^associate_keypoint_heads\.', 'associate_heads.', key)
        out[key] = value
    notes = ['converted the official ViT layout']
    if dropped:
        notes.append(f'dropped {", ".join(sorted(dropped)[:6])}'
                     f'{" ..." if len(dropped) > 6 else ""} (not part of a ViTPose backbone)')
    return out, notes
