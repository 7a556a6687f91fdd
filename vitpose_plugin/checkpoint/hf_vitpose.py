"""Hugging Face transformers' ViTPose (``VitPoseForPoseEstimation``), both ways.

A ``save_pretrained`` folder holds ``config.json`` and ``model.safetensors``. Its keys
(relative to the model)::

    backbone.embeddings.patch_embeddings.projection   backbone.embeddings.position_embeddings
    backbone.encoder.layer.{i}.attention.attention.{query,key,value}
    backbone.encoder.layer.{i}.attention.output.dense
    backbone.encoder.layer.{i}.layernorm_before / layernorm_after / mlp.fc1 / mlp.fc2
    backbone.encoder.layer.{i}.mlp.experts.{e}        (ViTPose+)
    backbone.layernorm
    head.deconv{1,2} head.batchnorm{1,2} head.conv    (classic decoder)
    head.conv                                         (simple decoder)

The position embedding has the official slot 0 (added to every patch), the patch
convolution the official padding of 2, and q, k, v are separate Linears (the plugin's
``qkv`` stacks them). transformers' LayerNorms use ``config.layer_norm_eps`` (1e-12 by
default; the official models and the plugin use 1e-6). A ViTPose+ file holds all
experts and one head (the first dataset's).

The architecture comes from ``config.json``: loading into a model of another
architecture is an error that names both. This module never imports transformers; files
are read and written with the ``safetensors`` library.
"""
import json
import os.path as osp
import re
from typing import List, Optional, Tuple

import torch

from .allowlist import CheckpointError, check_loaded

CONFIG_KEY = 'transformers_config'  # the config.json travels with the weights under this key
_BACKBONE = 'backbone.embeddings.patch_embeddings.projection.'
_HEAD = {'deconv1': 'deconv_layers.0', 'batchnorm1': 'deconv_layers.1',
         'deconv2': 'deconv_layers.3', 'batchnorm2': 'deconv_layers.4', 'conv': 'final_layer'}
_LAYER = [('attention.output.dense.', 'attn.proj.'), ('layernorm_before.', 'norm1.'),
          ('layernorm_after.', 'norm2.'), ('mlp.', 'mlp.')]


def matches(keys) -> bool:
    return any(k.startswith((_BACKBONE, 'embeddings.patch_embeddings.')) for k in keys)


def is_pretrained_path(path: str) -> bool:
    """A ``save_pretrained`` folder or a ``.safetensors`` file."""
    return (osp.isdir(path) and osp.isfile(osp.join(path, 'config.json'))) or \
        path.endswith('.safetensors')


def _config_error(file: str, what: str) -> CheckpointError:
    return CheckpointError(f'{file}: {what}')


def _check_number(file: str, where: str, value, kind=int, low=1, high=2**20):
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float
                                                   else int) or not low <= value <= high:
        raise _config_error(file, f'{where} must be {"a number" if kind is float else "an integer"}'
                            f' in [{low}, {high}], got {value!r}')


def read_config(file: str) -> dict:
    """A transformers ``config.json``, checked for the fields the plugin reads (types and
    ranges); :class:`CheckpointError` naming the file and the field otherwise."""
    try:
        with open(file, encoding='utf-8') as f:
            config = json.load(f)
    except RecursionError:
        raise _config_error(file, 'nested too deeply to be a config') from None
    except (OSError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError, huge ints
        raise _config_error(file, f'not a JSON config: {e}') from None
    if not isinstance(config, dict):
        raise _config_error(file, f'expected a JSON object, got a {type(config).__name__}')
    backbone = config.get('backbone_config')
    if backbone is None:
        backbone = {}
    if not isinstance(backbone, dict):
        raise _config_error(file, f'backbone_config must be an object, got {backbone!r:.80}')
    for key in ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_experts',
                'part_features'):
        if key in backbone:
            _check_number(file, f'backbone_config.{key}', backbone[key],
                          low=0 if key == 'part_features' else 1, high=2**16)
    if 'mlp_ratio' in backbone:
        _check_number(file, 'backbone_config.mlp_ratio', backbone['mlp_ratio'], float, 0, 64)
    patch = backbone.get('patch_size', [16, 16])
    patch = [patch, patch] if isinstance(patch, int) and not isinstance(patch, bool) else patch
    if not (isinstance(patch, list) and len(patch) == 2):
        raise _config_error(file, f'backbone_config.patch_size must be an integer or two, got '
                            f'{patch!r:.80}')
    for p in patch:
        _check_number(file, 'backbone_config.patch_size', p, high=1024)
    backbone['patch_size'] = patch
    act = backbone.get('hidden_act', 'gelu')
    if act != 'gelu':
        raise _config_error(file, f'backbone_config.hidden_act {act!r}: the plugin\'s ViT uses '
                            "exact GELU ('gelu') and cannot run another activation")
    eps = backbone.get('layer_norm_eps', 1e-12)
    _check_number(file, 'backbone_config.layer_norm_eps', eps, float, 0, 1)
    if 'id2label' in config and not isinstance(config['id2label'], dict):
        raise _config_error(file, f'id2label must be an object, got {config["id2label"]!r:.80}')
    if not isinstance(config.get('use_simple_decoder', True), bool):
        raise _config_error(file, 'use_simple_decoder must be true or false, got '
                            f'{config["use_simple_decoder"]!r:.80}')
    config['backbone_config'] = backbone
    config['_file'] = file
    return config


def load_pretrained(path: str, source: Optional[str] = None) -> dict:
    """{'state_dict': weights} from a ``save_pretrained`` folder or a ``.safetensors``
    file. Weights in transformers' layout carry the folder's config.json under
    ``CONFIG_KEY`` (checked by :func:`read_config`); a file in another layout (e.g. the
    plugin's) does not read any config.json. ``source`` names the file in messages (the
    URL of a download, whose folder is a cache)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    source = source or path
    folder = path if osp.isdir(path) else osp.dirname(path) or '.'
    weights = osp.join(path, 'model.safetensors') if osp.isdir(path) else path
    if not osp.isfile(weights):
        raise FileNotFoundError(f'{path}: no model.safetensors in this folder')
    try:
        state_dict = load_file(weights)
    except (SafetensorError, OSError, ValueError, RuntimeError, MemoryError) as e:
        raise CheckpointError(f'{weights if source == path else source}: not a valid '
                              f'safetensors file: {e}') from None
    state_dict = check_loaded(state_dict)
    config_file = osp.join(folder, 'config.json')
    if matches(state_dict) and source == path and osp.isfile(config_file):
        config = read_config(config_file)
        if config.get('model_type') == 'vitpose' or osp.isdir(path):
            state_dict[CONFIG_KEY] = config
    return {'state_dict': state_dict}


def _arch_of_model(model) -> dict:
    """The plugin model's architecture in transformers' terms (or None where it has no
    ViT backbone)."""
    from ..models.backbones.vit import ViT
    vit = getattr(model, 'backbone', model)
    if not isinstance(vit, ViT):
        return {}
    arch = dict(hidden_size=vit.embed_dims, num_hidden_layers=vit.num_layers,
                num_attention_heads=vit.layers[0].attn.num_heads,
                mlp_ratio=vit.layers[0].mlp.fc1.out_features / vit.embed_dims,
                num_experts=vit.num_experts or 1,
                patch_size=list(vit.patch_size))
    if vit.num_experts:
        arch['part_features'] = vit.layers[0].mlp.part_features
    head = getattr(model, 'head', None)
    if head is None and hasattr(model, 'heads'):
        head = model.heads[model.default_dataset]
    if head is not None and hasattr(head, 'final_layer'):
        arch['use_simple_decoder'] = not any(
            isinstance(m, torch.nn.ConvTranspose2d) for m in head.modules())
        arch['num_labels'] = head.final_layer.out_channels
    return arch


def _arch_of_config(config: dict) -> dict:
    backbone = dict(config.get('backbone_config') or {})
    arch = dict(hidden_size=backbone.get('hidden_size', 768),
                num_hidden_layers=backbone.get('num_hidden_layers', 12),
                num_attention_heads=backbone.get('num_attention_heads', 12),
                mlp_ratio=float(backbone.get('mlp_ratio', 4)),
                num_experts=backbone.get('num_experts', 1),
                patch_size=list(backbone.get('patch_size', [16, 16])),
                use_simple_decoder=config.get('use_simple_decoder', True))
    if arch['num_experts'] > 1:
        arch['part_features'] = backbone.get('part_features', 256)
    if 'id2label' in config:
        arch['num_labels'] = len(config['id2label'])
    return arch


def check_architecture(config: dict, model) -> List[str]:
    """Raise ``ValueError`` naming both when ``config`` (config.json) describes another
    architecture than ``model``; returns notes (e.g. on LayerNorm eps)."""
    want, have = _arch_of_model(model), _arch_of_config(config)
    diff = {k: (have[k], want[k]) for k in want if k in have and have[k] != want[k]}
    if diff:
        raise ValueError(
            f'{config.get("_file", "transformers config.json")} describes another '
            'architecture than the model: ' + ', '.join(
                f'{k}: checkpoint {a} vs model {b}' for k, (a, b) in sorted(diff.items())))
    from ..models.backbones.vit import ViT
    eps = float((config.get('backbone_config') or {}).get('layer_norm_eps', 1e-12))
    vit = getattr(model, 'backbone', model)
    if not isinstance(vit, ViT):
        return []
    norms = [m for m in vit.modules() if isinstance(m, torch.nn.LayerNorm) and m.eps != eps]
    for norm in norms:
        norm.eps = eps
    if norms:
        return [f'LayerNorm eps set to {eps:g} as in {config.get("_file", "config.json")} (the '
                f'official models and the plugin\'s configs use 1e-6)']
    return []


def convert(state_dict: dict, model=None) -> Tuple[dict, List[str]]:
    """transformers' layout -> the plugin's."""
    config = state_dict.pop(CONFIG_KEY, None)
    notes = ['converted the transformers ViTPose layout']
    if config is not None and model is not None:
        notes += check_architecture(config, model)
    elif config is not None:
        eps = float(config['backbone_config'].get('layer_norm_eps', 1e-12))
        if eps != 1e-6:
            notes.append(f'{config.get("_file", "config.json")} runs LayerNorm with eps={eps:g};'
                         ' the plugin layout stores no eps, and its ViT uses 1e-6 unless this '
                         'folder is loaded directly (heatmaps differ by about 1e-7)')
    prefix = 'backbone.' if any(k.startswith(_BACKBONE) for k in state_dict) else ''
    out, qkv = {}, {}
    for key, value in state_dict.items():
        if key.startswith('head.') or not key.startswith(prefix):
            m = re.match(r'^head\.(\w+?)\.(.*)$', key)
            out[f'head.{_HEAD.get(m.group(1), m.group(1))}.{m.group(2)}' if m else key] = value
            continue
        rel = key[len(prefix):]
        if rel.startswith('embeddings.patch_embeddings.projection.'):
            out[prefix + 'patch_embed.proj.' + rel.rsplit('.', 1)[1]] = value
        elif rel == 'embeddings.position_embeddings':
            out[prefix + 'pos_embed'] = value
        elif rel.startswith('layernorm.'):
            out[prefix + 'last_norm.' + rel.split('.', 1)[1]] = value
        else:
            m = re.match(r'^encoder\.layer\.(\d+)\.(.*)$', rel)
            if m is None:
                out[key] = value  # unknown: left for the strict check to name
                continue
            i, rest = m.groups()
            q = re.match(r'^attention\.attention\.(query|key|value)\.(weight|bias)$', rest)
            if q:
                qkv.setdefault((i, q.group(2)), {})[q.group(1)] = value
                continue
            for old, new in _LAYER:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            out[f'{prefix}layers.{i}.{rest}'] = value
    for (i, kind), parts in qkv.items():
        missing = [n for n in ('query', 'key', 'value') if n not in parts]
        if missing:
            raise KeyError(f'{prefix}encoder.layer.{i}.attention.attention.{missing[0]}.{kind} '
                           f'is missing (the file has {sorted(parts)} of layer {i})')
        out[f'{prefix}layers.{i}.attn.qkv.{kind}'] = torch.cat(
            [parts['query'], parts['key'], parts['value']], dim=0)
    return out, notes


def to_transformers(state_dict: dict) -> dict:
    """The plugin layout (one head: ``head.*``) -> transformers' keys."""
    out = {}
    inverse = {v: k for k, v in _HEAD.items()}
    for key, value in state_dict.items():
        if key.startswith('head.'):
            m = re.match(r'^head\.(deconv_layers\.\d|final_layer)\.(.*)$', key)
            if m is None or m.group(1) not in inverse:
                raise KeyError(f'{key}: not part of a ViTPose decoder transformers knows')
            out[f'head.{inverse[m.group(1)]}.{m.group(2)}'] = value
            continue
        rel = key[len('backbone.'):]
        if rel.startswith('patch_embed.proj.'):
            out['backbone.embeddings.patch_embeddings.projection.' + rel.rsplit('.', 1)[1]] = value
        elif rel == 'pos_embed':
            out['backbone.embeddings.position_embeddings'] = value
        elif rel.startswith('last_norm.'):
            out['backbone.layernorm.' + rel.split('.', 1)[1]] = value
        else:
            m = re.match(r'^layers\.(\d+)\.(.*)$', rel)
            if m is None:
                raise KeyError(f'{key}: not part of a ViTPose backbone transformers knows')
            i, rest = m.groups()
            base = f'backbone.encoder.layer.{i}.'
            if rest.startswith('attn.qkv.'):
                kind = rest.rsplit('.', 1)[1]
                for name, part in zip(('query', 'key', 'value'), value.chunk(3, dim=0)):
                    out[f'{base}attention.attention.{name}.{kind}'] = part.clone()
                continue
            for new, old in _LAYER:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            out[base + rest] = value
    return out


def transformers_config(model, dataset_meta: Optional[dict] = None) -> dict:
    """A ``config.json`` (``VitPoseConfig``) describing the plugin ``model``."""
    arch = _arch_of_model(model)
    vit = model.backbone
    n = arch['num_hidden_layers']
    backbone = dict(
        model_type='vitpose_backbone', image_size=list(vit.img_size),
        patch_size=arch['patch_size'], num_channels=vit.patch_embed.proj.in_channels,
        hidden_size=arch['hidden_size'], num_hidden_layers=n,
        num_attention_heads=arch['num_attention_heads'], mlp_ratio=int(arch['mlp_ratio']),
        num_experts=arch['num_experts'], part_features=arch.get('part_features', 0),
        hidden_act='gelu', hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        initializer_range=0.02, layer_norm_eps=1e-6, qkv_bias=vit.layers[0].attn.qkv.bias
        is not None, stage_names=['stem'] + [f'stage{i}' for i in range(1, n + 1)],
        out_features=[f'stage{n}'], out_indices=[n])
    names = [f'LABEL_{i}' for i in range(arch['num_labels'])]
    edges = []
    if dataset_meta:
        names = [dataset_meta['keypoint_id2name'][i] for i in range(arch['num_labels'])]
        edges = [list(map(int, e)) for e in dataset_meta.get('skeleton_links', [])]
    return dict(architectures=['VitPoseForPoseEstimation'], model_type='vitpose',
                backbone_config=backbone, use_simple_decoder=arch['use_simple_decoder'],
                scale_factor=4, initializer_range=0.02, use_pretrained_backbone=False,
                use_timm_backbone=False, backbone=None, backbone_kwargs=None,
                id2label={str(i): n for i, n in enumerate(names)},
                label2id={n: i for i, n in enumerate(names)}, edges=edges)
