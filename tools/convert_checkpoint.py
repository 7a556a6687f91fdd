"""Convert a checkpoint of any layout the plugin reads into vitpose_plugin's layout.

    python tools/convert_checkpoint.py SRC DST [--config CONFIG]
        [--img-size H W] [--patch-size P] [--ratio R] [--dataset NAME]

SRC: an official ViTPose / ViTPose+, MMPose-released ViTPose or MAE checkpoint, a
Hugging Face transformers ViTPose (a ``save_pretrained`` folder or ``.safetensors``
file), or a TransPose / TokenPose authors' checkpoint. With ``--config`` the result is
fitted to that config's model (position grid, patch kernel, heads) and checked against
it strictly (for transformers files: against config.json's architecture too). The
plugin also loads every one of these layouts directly; a converted file is read by
MMEngine's own loaders and other tools without the plugin.
"""
import argparse
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from vitpose_plugin.checkpoint import detect_layout, to_plugin_layout, unwrap_state_dict
from vitpose_plugin.checkpoint.convert import fit_vit, infer_grid
from vitpose_plugin.checkpoint.hf_vitpose import is_pretrained_path
from vitpose_plugin.checkpoint.vitpose_plus import VITPOSE_PLUS_DATASETS, plain_vitpose
from vitpose_plugin.version import __version__

_POSE_KEYS = ('backbone.', 'layers.', 'head.', 'heads.', 'neck.')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='source checkpoint (.pth, .safetensors or a folder)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--config', help='fit to and check against this plugin config')
    parser.add_argument('--img-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='resize the position grid for this input size')
    parser.add_argument('--patch-size', type=int, help='fit the patch kernel to P x P')
    parser.add_argument('--ratio', type=int, default=1, help='patch ratio (2: 1/8 features)')
    parser.add_argument('--dataset', help='ViTPose+ only: keep this dataset\'s expert and '
                        f'head as a plain ViTPose (one of {", ".join(VITPOSE_PLUS_DATASETS)})')
    return parser.parse_args(argv)


def build_model(config: str):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    import vitpose_plugin  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(config)
    init_default_scope('mmpose')
    cfg.model.setdefault('backbone', {})['init_cfg'] = None
    return MODELS.build(cfg.model)


def main(argv=None):
    args = parse_args(argv)
    if not (osp.isfile(args.src) or is_pretrained_path(args.src)):
        raise SystemExit(f'error: source checkpoint {args.src} does not exist')
    try:
        ckpt = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    except (ValueError, OSError) as e:  # CheckpointError names the file and the problem
        raise SystemExit(f'error: {e}')
    source = unwrap_state_dict(ckpt)
    layout = detect_layout(source)
    if layout == 'plugin' and not any(k.startswith(_POSE_KEYS) for k in source):
        raise SystemExit(f'error: {args.src}: no ViT backbone or pose model found: expected '
                         "keys like 'backbone.blocks.0.attn.qkv.weight' (official/MAE), "
                         "'backbone.layers.0.ln1.weight' (MMPose) or transformers' "
                         f"'backbone.encoder.layer.0...'; first keys: {list(source)[:5]}")
    model = build_model(args.config) if args.config else None
    try:
        sd, notes = to_plugin_layout(source, model)
        if args.dataset:
            sd = plain_vitpose(sd, args.dataset)
            notes.append(f'kept expert and head of {args.dataset} (a plain ViTPose)')
        if model is None and (args.img_size or args.patch_size):
            kernel = sd['backbone.patch_embed.proj.weight'].shape[-2:]
            patch = (args.patch_size, ) * 2 if args.patch_size else tuple(kernel)
            grid = tuple(s // p * args.ratio for s, p in zip(args.img_size, patch)) \
                if args.img_size else infer_grid(sd['backbone.pos_embed'].shape[1] - 1, (4, 3))
            notes += fit_vit(sd, 'backbone.', grid, patch)
        if model is not None:
            model.load_state_dict(sd, strict=True)  # the strict check names every key
    except (ValueError, KeyError, RuntimeError) as e:
        raise SystemExit(f'error: {args.src}: {e}')
    meta = dict(ckpt.get('meta', {})) if isinstance(ckpt.get('meta'), dict) else {}
    meta.update(converted_from=osp.basename(osp.normpath(args.src)), source_layout=layout,
                converter=f'vitpose_plugin {__version__}')
    torch.save({'state_dict': sd, 'meta': meta}, args.dst)
    for note in notes or ['already in the plugin layout']:
        print(f'- {note}')
    print(f'wrote {len(sd)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
