"""ViTPose+ checkpoints: the head layout and the split into plain ViTPose models.

An official ViTPose+ file holds one backbone whose FFNs have a shared part and one
expert per dataset (``blocks.{i}.mlp.experts.{e}``), the first dataset's head as
``keypoint_head`` and the others as ``associate_keypoint_heads.{e-1}``. Merging
expert e into ``fc2`` gives a plain ViTPose with exactly the outputs of the MoE
model on dataset e.
"""
import re
from typing import Dict, Sequence

import torch

from .convert import convert_checkpoint

# dataset order of the official ViTPose+ models
VITPOSE_PLUS_DATASETS = ('coco', 'aic', 'mpii', 'ap10k', 'apt36k', 'coco_wholebody')


def heads_by_dataset(state_dict: dict, datasets: Sequence[str]) -> dict:
    """Rename ``keypoint_head`` / ``head`` and ``associate_keypoint_heads.{j}`` to
    ``heads.{dataset}`` (plugin layout); other keys are kept."""
    out = {}
    for key, value in state_dict.items():
        m = re.match(r'^associate_(?:keypoint_)?heads\.(\d+)\.(.*)$', key)
        if m:
            key = f'heads.{datasets[int(m.group(1)) + 1]}.{m.group(2)}'
        elif key.startswith(('keypoint_head.', 'head.')):
            key = f'heads.{datasets[0]}.' + key.split('.', 1)[1]
        out[key] = value
    return out


def split_vitpose_plus(state_dict: dict,
                       datasets: Sequence[str] = VITPOSE_PLUS_DATASETS) -> Dict[str, dict]:
    """{dataset: plain ViTPose state dict (plugin layout)} from a ViTPose+ state dict."""
    sd, _ = convert_checkpoint(state_dict)
    sd = heads_by_dataset(sd, datasets)
    experts = {int(m.group(1)) for k in sd
               for m in [re.search(r'\.mlp\.experts\.(\d+)\.', k)] if m}
    if not experts:
        raise ValueError('no ViTPose+ experts (keys like backbone.blocks.0.mlp.experts.0.weight)'
                         ' in this checkpoint')
    if len(datasets) > len(experts):
        raise ValueError(f'{len(datasets)} datasets {list(datasets)} for {len(experts)} experts')
    plain = {}
    for e, name in enumerate(datasets):
        out = {}
        for key, value in sd.items():
            if '.mlp.experts.' in key or key.startswith('heads.'):
                continue
            m = re.match(r'^(.*\.mlp)\.fc2\.(weight|bias)$', key)
            if m:
                expert = sd[f'{m.group(1)}.experts.{e}.{m.group(2)}']
                value = torch.cat([value, expert], dim=0)
            out[key] = value
        prefix = f'heads.{name}.'
        head = {'head.' + k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not head:
            raise ValueError(f'no head for dataset {name!r} (expected keys {prefix}*)')
        out.update(head)
        plain[name] = out
    return plain


