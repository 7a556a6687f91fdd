"""ViTPose+ checkpoints: per-dataset heads, and the split into plain ViTPose models.

An official ViTPose+ file holds one backbone whose FFNs have a shared part and one
expert per dataset (``layers.{i}.mlp.experts.{e}``), the first dataset's head as
``keypoint_head`` and the others as ``associate_keypoint_heads.{e-1}``. Merging expert e
into ``fc2`` gives a plain ViTPose with exactly the outputs of the MoE model on dataset
e.
"""
import re
from typing import Dict, Sequence

import torch

# dataset order of the official ViTPose+ models (expert / head index)
VITPOSE_PLUS_DATASETS = ('coco', 'aic', 'mpii', 'ap10k', 'apt36k', 'coco_wholebody')


def heads_by_dataset(state_dict: dict, datasets: Sequence[str]) -> dict:
    """Rename ``head`` and ``associate_heads.{j}`` (``keypoint_head`` /
    ``associate_keypoint_heads`` before conversion) to ``heads.{dataset}``; other keys
    are kept."""
    out = {}
    for key, value in state_dict.items():
        m = re.match(r'^associate_(?:keypoint_)?heads\.(\d+)\.(.*)$', key)
        if m:
            j = int(m.group(1))
            if j + 1 >= len(datasets):
                raise ValueError(
                    f'{key}: associate head {j} (associate_keypoint_heads.{j} in official '
                    f'files) is dataset {j + 2} of the file, but only '
                    f'{len(datasets)} datasets are named ({list(datasets)}); name them all '
                    '(e.g. --datasets, or the model\'s dataset names)')
            key = f'heads.{datasets[j + 1]}.{m.group(2)}'
        elif key.startswith(('keypoint_head.', 'head.')):
            key = f'heads.{datasets[0]}.' + key.split('.', 1)[1]
        out[key] = value
    return out


def merge_expert(state_dict: dict, expert: int) -> dict:
    """The backbone of a plain ViTPose: ``fc2`` of every block gets expert ``expert``'s
    rows appended, and all experts are dropped. Other keys are kept."""
    out = {}
    for key, value in state_dict.items():
        if '.mlp.experts.' in key:
            continue
        m = re.match(r'^(.*\.mlp)\.fc2\.(weight|bias)$', key)
        if m:
            part = state_dict.get(f'{m.group(1)}.experts.{expert}.{m.group(2)}')
            if part is None:
                raise KeyError(f'{m.group(1)}.experts.{expert}.{m.group(2)} is missing')
            value = torch.cat([value, part], dim=0)
        out[key] = value
    return out


def num_experts(state_dict: dict) -> int:
    return len({int(m.group(1)) for k in state_dict
                for m in [re.search(r'\.mlp\.experts\.(\d+)\.', k)] if m})


def plain_vitpose(state_dict: dict, dataset: str,
                  datasets: Sequence[str] = VITPOSE_PLUS_DATASETS) -> dict:
    """The plain ViTPose of one ``dataset`` (its expert merged into every fc2, its head as
    ``head``) from a ViTPose+ state dict in the plugin layout. ``datasets`` gives the
    expert / head order."""
    experts = num_experts(state_dict)
    if not experts:
        raise ValueError('no ViTPose+ experts (keys like backbone.layers.0.mlp.experts.0.weight)'
                         ' in this checkpoint')
    if dataset not in datasets[:experts]:
        raise ValueError(f'dataset {dataset!r}: the {experts} experts are '
                         f'{list(datasets[:experts])}')
    sd = heads_by_dataset(state_dict, datasets)
    prefix = f'heads.{dataset}.'
    head = {'head.' + k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not head:
        raise ValueError(f'no head for dataset {dataset!r} in this checkpoint (heads: '
                         f'{sorted({k.split(".")[1] for k in sd if k.startswith("heads.")})}'
                         '; transformers files hold the first dataset\'s only)')
    backbone = {k: v for k, v in sd.items() if not k.startswith('heads.')}
    return {**merge_expert(backbone, datasets.index(dataset)), **head}


def split_vitpose_plus(state_dict: dict,
                       datasets: Sequence[str] = VITPOSE_PLUS_DATASETS) -> Dict[str, dict]:
    """{dataset: plain ViTPose state dict} from a ViTPose+ state dict in the plugin
    layout (see :func:`vitpose_plugin.checkpoint.to_plugin_layout`)."""
    experts = num_experts(state_dict)
    if experts and len(datasets) > experts:
        raise ValueError(f'{len(datasets)} datasets {list(datasets)} for {experts} experts')
    return {name: plain_vitpose(state_dict, name, datasets) for name in datasets}
