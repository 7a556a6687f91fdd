"""The TransPose authors' checkpoints (yangsenius/TransPose, ``tp_{r,h}_*.pth``).

Keys (bare state dicts; training checkpoints nest them under ``state_dict`` with a
``module.`` prefix, which the loader strips)::

    pos_embedding (h*w, 1, d)               the fixed sine table (checked, then dropped)
    conv1, bn1, layer1, layer2              TransPose-R: ResNet-50 up to layer2
    conv1, bn1, conv2, bn2, layer1,         TransPose-H: HRNet stages 1-3
      transition{1,2}, stage{2,3}
    reduce                                  1x1 conv to d
    global_encoder.layers.{i}.self_attn / linear1 / linear2 / norm1 / norm2
    deconv_layers.{0,1}                     TransPose-R only
    final_layer
"""
import re
from typing import List, Tuple

from .authors_sine import check_and_drop

_ENCODER = [('self_attn.', 'attn.'), ('linear1.', 'ffn.0.'), ('linear2.', 'ffn.3.'),
            ('norm1.', 'norm1.'), ('norm2.', 'norm2.')]


def matches(keys) -> bool:
    keys = list(keys)
    return any(k.startswith('global_encoder.layers.') for k in keys) and 'reduce.weight' in keys


def convert(state_dict: dict, model=None) -> Tuple[dict, List[str]]:
    out, notes = {}, ['converted the TransPose authors\' layout']
    for key, value in state_dict.items():
        if key == 'pos_embedding':
            notes.append(check_and_drop(value, key))
            continue
        m = re.match(r'^global_encoder\.layers\.(\d+)\.(.*)$', key)
        if m:
            rest = m.group(2)
            for old, new in _ENCODER:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            out[f'neck.layers.{m.group(1)}.{rest}'] = value
        elif key.startswith('reduce.'):
            out['neck.' + key] = value
        elif key.startswith(('deconv_layers.', 'final_layer.')):
            out['head.' + key] = value
        else:  # the CNN keeps its ResNet / HRNet names
            out['backbone.' + key] = value
    return out, notes
