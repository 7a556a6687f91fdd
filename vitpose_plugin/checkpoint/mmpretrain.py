"""The layout of MMPose's released ViTPose checkpoints (mmpretrain's VisionTransformer).

::

    backbone.patch_embed.projection  backbone.pos_embed (1, N, C) [or (1, 1+N, C) + cls_token]
    backbone.layers.{i}.ln1 / attn.qkv / attn.proj / ln2 / ffn.layers.0.0 / ffn.layers.1
    backbone.ln1 (the final norm)   head.*

A position embedding without a cls slot gets a zero slot 0, which leaves the outputs
unchanged (slot 0 is added to every patch).
"""
import re
from typing import List, Tuple

import torch

_LAYER = re.compile(r'^(backbone\.)?layers\.\d+\.(ln1|ffn)\.')
_RULES = [
    (re.compile(r'^patch_embed\.projection\.'), 'patch_embed.proj.'),
    (re.compile(r'^layers\.(\d+)\.ln1\.'), r'layers.\1.norm1.'),
    (re.compile(r'^layers\.(\d+)\.ln2\.'), r'layers.\1.norm2.'),
    (re.compile(r'^layers\.(\d+)\.ffn\.layers\.0\.0\.'), r'layers.\1.mlp.fc1.'),
    (re.compile(r'^layers\.(\d+)\.ffn\.layers\.1\.'), r'layers.\1.mlp.fc2.'),
    (re.compile(r'^ln1\.'), 'last_norm.'),
]


def matches(keys) -> bool:
    return any(_LAYER.match(k) for k in keys)


def convert(state_dict: dict, model=None) -> Tuple[dict, List[str]]:
    prefix = 'backbone.' if any(_LAYER.match(k) and k.startswith('backbone.')
                                for k in state_dict) else ''
    has_cls = prefix + 'cls_token' in state_dict
    out = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            rel = key[len(prefix):]
            if rel == 'cls_token':
                continue
            for pattern, repl in _RULES:
                rel = pattern.sub(repl, rel)
            key = prefix + rel
        out[key] = value
    notes = ['converted the mmpretrain ViT layout']
    pos = out.get(prefix + 'pos_embed')
    if pos is not None and not has_cls:
        out[prefix + 'pos_embed'] = torch.cat([pos.new_zeros(1, 1, pos.shape[-1]), pos], 1)
        notes.append('added a zero slot 0 to pos_embed (leaves outputs unchanged)')
    return out, notes
