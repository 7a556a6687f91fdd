"""The TokenPose authors' layout (leeyegy/TokenPose).

The authors released no weights, but people train with their code; its files are bare
state dicts (``final_state.pth``, ``model_best.pth``) or ``{'state_dict': ...}`` with a
``module.`` prefix, which the loader strips. With T the transformer's prefix
(``features.`` for TokenPose-S, ``transformer.`` for -T/-B/-L)::

    features.{conv1,bn1,conv2,bn2,layer1}     TokenPose-S: HRNet stem + stage 1
    pre_feature.*                             TokenPose-B/L: HRNet stages 1-3
    T.keypoint_token (1, K, d)   T.patch_to_embedding   T.pos_embedding (fixed sine table)
    T.transformer.layers.{i}.0.fn.norm / .0.fn.fn.to_qkv / .0.fn.fn.to_out.0
    T.transformer.layers.{i}.1.fn.norm / .1.fn.fn.net.0 / .1.fn.fn.net.3
    T.transformer{1,2,3}.layers.{j}.*         TokenPose-L: three stages
    T.mlp_head.{0..3}
"""
import re
from typing import List, Tuple

from .authors_sine import check_and_drop

_LAYER = [('0.fn.norm.', 'norm1.'), ('0.fn.fn.to_qkv.', 'qkv.'), ('0.fn.fn.to_out.0.', 'proj.'),
          ('1.fn.norm.', 'norm2.'), ('1.fn.fn.net.0.', 'ffn.0.'), ('1.fn.fn.net.3.', 'ffn.3.')]


def matches(keys) -> bool:
    return any(re.match(r'^(features|transformer)\.keypoint_token$', k) for k in keys)


def convert(state_dict: dict, model=None) -> Tuple[dict, List[str]]:
    base = 'features.' if 'features.keypoint_token' in state_dict else 'transformer.'
    # TokenPose-L: layers j of stage s (1-based) are layer (s - 1) * depth + j
    depth = 1 + max((int(m.group(1)) for k in state_dict
                     for m in [re.match(rf'^{base}transformer\d\.layers\.(\d+)\.', k)] if m),
                    default=-1)
    out, notes = {}, ['converted the TokenPose authors\' layout']
    for key, value in state_dict.items():
        if key.startswith('pre_feature.'):
            out['backbone.' + key[len('pre_feature.'):]] = value
            continue
        if not key.startswith(base):
            out[key] = value  # unknown: left for the strict check to name
            continue
        rel = key[len(base):]
        m = re.match(r'^transformer(\d?)\.layers\.(\d+)\.(.*)$', rel)
        if rel == 'pos_embedding':
            notes.append(check_and_drop(value, key))
        elif rel == 'keypoint_token':
            out['head.keypoint_tokens'] = value
        elif rel.startswith('patch_to_embedding.'):
            out['head.patch_embed.' + rel.split('.', 1)[1]] = value
        elif rel.startswith('mlp_head.'):
            out['head.' + rel] = value
        elif m:
            stage, j, rest = m.groups()
            i = (int(stage) - 1) * depth + int(j) if stage else int(j)
            for old, new in _LAYER:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            out[f'head.layers.{i}.{rest}'] = value
        else:  # TokenPose-S's CNN: features.{conv1, bn1, conv2, bn2, layer1}
            out['backbone.' + rel] = value
    return out, notes
