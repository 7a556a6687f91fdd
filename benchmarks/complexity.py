"""Parameters and GFLOPs of every model config, beside the papers' figures.

For each config this builds the model (no weights are loaded) and runs one image of the
config's input size through it under torch's FlopCounterMode. GFLOPs here count one
multiply-add as one FLOP, as the pose papers do, and include every matmul: linear
layers, convolutions and the two matmuls of each attention (attention is forced onto
torch's math kernel and autograd stays on, so that fused attention kernels, which the
counter cannot see, are not used). The column "w/o attn" leaves the attention matmuls
out: several papers' counters (thop-style, per module) never saw them, which explains
most gaps to their figures.

    python -m benchmarks.complexity [--configs GLOB ...] [--out JSON]
"""
import argparse
import glob
import json
import os
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT = ['vitpose/coco/td-hm_vitpose-*.py', 'swin_pose/coco/*.py', 'tokenpose/coco/*.py',
           'transpose/coco/*.py']
# (params M, GFLOPs, COCO val AP) as published; None where the source gives none.
PAPERS = {
    'td-hm_vitpose-base_8xb64-210e_coco-256x192': (86, 17.1, 75.8, 'ViTPose (params: backbone)'),
    'td-hm_vitpose-large_8xb64-210e_coco-256x192': (307, 69.4, 78.3, 'ViTPose (params: backbone)'),
    'td-hm_vitpose-huge_8xb64-210e_coco-256x192': (632, 122.9, 79.1, 'ViTPose (params: backbone)'),
    'td-hm_swin-b-fusion-a_8xb32-210e_coco-256x192': (None, None, 74.1,
                                                      'MMPose 0.x Swin-B + FPN'),
    'td-hm_tokenpose-s-v1_4xb32-300e_coco-256x192': (6.6, 2.2, 72.5, 'TokenPose'),
    'td-hm_tokenpose-b_4xb32-300e_coco-256x192': (13.5, 5.65, None,
                                                  'TokenPose official config'),
    'td-hm_tokenpose-l-d24_4xb16-300e_coco-256x192': (27.5, 11.0, 75.8, 'TokenPose'),
    'td-hm_transpose-r-a3_8xb32-230e_coco-256x192': (5.2, 8.0, 71.7, 'TransPose'),
    'td-hm_transpose-r-a4_8xb32-230e_coco-256x192': (6.0, 8.9, 72.6, 'TransPose'),
    'td-hm_transpose-h-s_8xb32-230e_coco-256x192': (8.0, 10.2, 74.2, 'TransPose'),
    'td-hm_transpose-h-a4_8xb32-230e_coco-256x192': (17.3, 17.5, 75.3, 'TransPose'),
    'td-hm_transpose-h-a6_8xb32-230e_coco-256x192': (17.5, 21.8, 75.8, 'TransPose'),
}
ATTENTION_OPS = ('bmm', 'matmul')  # the attention matmuls under the math kernel


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--configs', nargs='+', default=DEFAULT,
                   help='globs under configs/ (default: all model families)')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'complexity.json'))
    return p.parse_args()


def measure(path):
    """(params in M, GFLOPs, GFLOPs without attention matmuls, input (H, W))."""
    from mmpose.registry import MODELS
    cfg = Config.fromfile(path)
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    model.eval()
    w, h = cfg.codec['input_size']
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model._forward(torch.randn(1, 3, h, w))
    flops = counter.get_flop_counts()['Global']
    total = sum(flops.values()) / 2e9
    attention = sum(v for k, v in flops.items() if str(k).split('.')[-1] in ATTENTION_OPS)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return params, total, total - attention / 2e9, (h, w)


def main():
    args = parse_args()
    import vitpose_plugin  # noqa: F401
    paths = sorted({p for g in args.configs for p in glob.glob(osp.join(REPO, 'configs', g))})
    if not paths:
        raise SystemExit(f'no config matches {args.configs} under {REPO}/configs')
    rows = []
    head = (f"{'config':58s} {'input':>8s} {'params M':>9s} {'paper':>6s} {'GFLOPs':>7s} "
            f"{'w/o attn':>8s} {'paper':>6s} {'AP':>5s}  source")
    print(head)
    print('-' * len(head))
    fmt = lambda v, f: format(v, f) if v is not None else '-'  # noqa: E731
    for path in paths:
        name = osp.splitext(osp.basename(path))[0]
        params, gflops, no_attn, (h, w) = measure(path)
        p_params, p_gflops, p_ap, source = PAPERS.get(name, (None, None, None, ''))
        rows.append(dict(config=osp.relpath(path, REPO), input=[h, w], params_m=params,
                         gflops=gflops, gflops_without_attention=no_attn,
                         paper_params_m=p_params, paper_gflops=p_gflops, paper_ap=p_ap,
                         paper_source=source))
        print(f'{name[:58]:58s} {h:>4d}x{w:<3d} {params:9.2f} {fmt(p_params, "6.1f"):>6s} '
              f'{gflops:7.2f} {no_attn:8.2f} {fmt(p_gflops, "6.1f"):>6s} '
              f'{fmt(p_ap, "5.1f"):>5s}  {source}', flush=True)
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(rows, f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
