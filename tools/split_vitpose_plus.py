"""Split a ViTPose+ checkpoint into one plain ViTPose checkpoint per dataset.

    python tools/split_vitpose_plus.py SRC OUT_DIR
        [--datasets coco aic mpii ap10k apt36k coco_wholebody]

Expert i is merged into every block's fc2 and dataset i's head becomes ``head``;
each file loads into the plain ViTPose config of that size (with that dataset's
keypoint count) and gives the MoE model's heatmaps for that dataset.
"""
import argparse
import os
import os.path as osp
import tempfile

import torch

from vitpose_plugin.checkpoint import load_state_dict_file, to_plugin_layout
from vitpose_plugin.checkpoint.vitpose_plus import VITPOSE_PLUS_DATASETS, split_vitpose_plus


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='ViTPose+ checkpoint (official or plugin layout)')
    parser.add_argument('out_dir')
    parser.add_argument('--datasets', nargs='+', default=list(VITPOSE_PLUS_DATASETS),
                        help='dataset of each expert, in order')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'error: {args.src} does not exist')
    try:
        state_dict, _ = to_plugin_layout(load_state_dict_file(args.src))
        parts = split_vitpose_plus(state_dict, args.datasets)
        for name, sd in parts.items():  # every part checked before anything is written
            if 'head.final_layer.weight' not in sd:
                raise KeyError(f'the head of {name} has no final_layer.weight')
    except (ValueError, KeyError) as e:
        raise SystemExit(f'error: {args.src}: {e.args[0] if e.args else e}')
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(args.src))[0]
    # all files or none: write into a temporary folder beside the outputs, then rename
    tmp = tempfile.mkdtemp(prefix='.split-', dir=args.out_dir)
    try:
        for name, sd in parts.items():
            torch.save({'state_dict': sd, 'meta': dict(split_from=osp.basename(args.src),
                                                       dataset=name)},
                       osp.join(tmp, f'{stem}_{name}.pth'))
        for name in parts:
            os.replace(osp.join(tmp, f'{stem}_{name}.pth'),
                       osp.join(args.out_dir, f'{stem}_{name}.pth'))
    finally:
        for left in os.listdir(tmp):
            os.remove(osp.join(tmp, left))
        os.rmdir(tmp)
    for name, sd in parts.items():
        k = sd['head.final_layer.weight'].shape[0]
        print(f'{name}: {k} keypoints -> {osp.join(args.out_dir, f"{stem}_{name}.pth")}')


if __name__ == '__main__':
    main()
