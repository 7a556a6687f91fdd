"""Export a plugin ViTPose to a Hugging Face transformers folder.

    python tools/export_hf.py CONFIG CHECKPOINT OUT_DIR [--dataset NAME]

OUT_DIR gets ``config.json`` (``VitPoseConfig``: architecture, keypoint names and
skeleton), ``model.safetensors`` and ``preprocessor_config.json``
(``VitPoseImageProcessor``: input size, mean and std), so that
``VitPoseForPoseEstimation.from_pretrained(OUT_DIR)`` and
``VitPoseImageProcessor.from_pretrained(OUT_DIR)`` load it. The classic and simple
decoders and ViTPose+ (all experts; transformers holds one head: the ``--dataset`` one,
the first by default) are supported; window attention, 1/8 features and knowledge tokens
are not (transformers has no such layers). transformers itself is not needed.
"""
import argparse
import json
import os
import os.path as osp

import torch
from mmpose.apis import init_model

from vitpose_plugin.checkpoint.hf_vitpose import to_transformers, transformers_config
from vitpose_plugin.models.backbones.attention import Attention


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help='pose weights (any layout the plugin reads)')
    p.add_argument('out_dir')
    p.add_argument('--dataset', help='multi-head models: the dataset whose head is exported')
    return p.parse_args(argv)


def exportable(model):
    """Refuse what transformers' ViTPose cannot express, naming it."""
    vit = model.backbone
    if vit.ratio != 1 or vit.knowledge_token is not None or any(
            type(layer.attn) is not Attention for layer in vit.layers):
        raise SystemExit('error: transformers ViTPose has full attention over 1/16 patches '
                         'only: this config uses ratio 2, window attention or a knowledge '
                         'token')


def main(argv=None):
    args = parse_args(argv)
    from safetensors.torch import save_file
    model = init_model(args.config, args.checkpoint, device='cpu')
    exportable(model)
    sd = model.state_dict()
    if hasattr(model, 'heads'):  # multi-dataset: keep one head, named 'head'
        try:
            model.default_dataset = args.dataset or model.dataset_names[0]
        except KeyError as e:
            raise SystemExit(f'error: --dataset: {e}')
        prefix = f'heads.{model.default_dataset}.'
        sd = {('head.' + k[len(prefix):] if k.startswith(prefix) else k): v
              for k, v in sd.items() if k.startswith(prefix) or not k.startswith('heads.')}
    meta = dict(model.dataset_meta or {})
    weights = {k: v.contiguous() for k, v in to_transformers(sd).items()}
    os.makedirs(args.out_dir, exist_ok=True)
    save_file(weights, osp.join(args.out_dir, 'model.safetensors'), metadata={'format': 'pt'})
    with open(osp.join(args.out_dir, 'config.json'), 'w') as f:
        json.dump(transformers_config(model, meta), f, indent=2)
    pre = model.data_preprocessor
    w, h = model.cfg.codec['input_size']
    processor = dict(image_processor_type='VitPoseImageProcessor', do_affine_transform=True,
                     size=dict(height=h, width=w), do_rescale=True, rescale_factor=1 / 255,
                     do_normalize=True, normalize_factor=200.0,
                     image_mean=[round(float(m) / 255, 6) for m in pre.mean.flatten()],
                     image_std=[round(float(s) / 255, 6) for s in pre.std.flatten()])
    with open(osp.join(args.out_dir, 'preprocessor_config.json'), 'w') as f:
        json.dump(processor, f, indent=2)
    print(f'wrote {len(weights)} tensors ({sum(v.numel() for v in weights.values()) / 1e6:.2f}M '
          f'parameters) and the configs to {args.out_dir}')


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    main()
