"""Convert an official ViTPose, MMPose-released ViTPose or MAE checkpoint into
vitpose_plugin's layout.

    python tools/convert_checkpoint.py SRC DST [--img-size H W] [--patch-size P]

The plugin also loads the source layouts directly; converting once gives a file
that MMEngine's strict loaders and other tools read without the plugin's hooks.
"""
import argparse
import os.path as osp

import torch

from vitpose_plugin.checkpoint.convert import convert_checkpoint, unwrap_state_dict
from vitpose_plugin.checkpoint.loader import load_from_local
from vitpose_plugin.version import __version__


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='source checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--img-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='resize the position grid for this input size')
    parser.add_argument('--patch-size', type=int, help='resize the patch kernel to P x P')
    parser.add_argument('--ratio', type=int, default=1, help='patch ratio (2: 1/8 features)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'error: source checkpoint {args.src} does not exist')
    ckpt = load_from_local(args.src, map_location='cpu')
    patch = (args.patch_size, ) * 2 if args.patch_size else None
    try:
        sd, notes = convert_checkpoint(unwrap_state_dict(ckpt), args.img_size, patch, args.ratio)
    except ValueError as e:
        raise SystemExit(f'error: {args.src}: {e}')
    meta = dict(ckpt.get('meta', {})) if isinstance(ckpt.get('meta'), dict) else {}
    meta.update(converted_from=osp.basename(args.src), converter=f'vitpose_plugin {__version__}')
    torch.save({'state_dict': sd, 'meta': meta}, args.dst)
    for note in notes or ['already in the plugin layout']:
        print(f'- {note}')
    print(f'wrote {len(sd)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
