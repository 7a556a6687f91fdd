"""Cost of the attention variants of ViTPose's Table 5, beside the paper's figures.

For every Table-5 config (ViTPose-B, 256x192 with 1/8 features and 576x432 with 1/16
features) this builds the real-size model and measures, per image:

* GFLOPs of a forward pass (torch's FlopCounterMode: matmuls, convolutions);
* training memory: the bytes autograd saves for backward in one forward (what the
  forward+backward peak grows with batch size), with the explicit attention of the
  official code (``fused_attn=False``, as the paper measured) and with torch's fused
  kernel (the plugin's default);
* on a GPU (``--device cuda``): the real forward+backward peak (max_memory_allocated).

It prints them as ratios to the full-attention row next to the paper's, then fits
memory against the number of tokens at three resolutions (window: linear, full:
quadratic). Writes JSON.

    python -m benchmarks.attention_table5 [--device cpu|cuda] [--batch 1]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from mmengine.config import Config

import vitpose_plugin  # noqa: F401
from benchmarks.measure import cpu_line, gflops, saved_bytes
from vitpose_plugin.models.backbones.attention import Attention
from vitpose_plugin.models.backbones.window_attention import WindowAttention

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = osp.join(REPO, 'configs', 'vitpose', 'coco', 'attention')
ROWS = ['full', 'window', 'window-shift', 'window-pool', 'window-shift-pool', 'full-window',
        'window16x12-shift-pool']
# ViTPose paper, Table 5 (ViTPose-B, 256x192, 1/8 features): AP, training memory (MB;
# the full-attention run used fp16) and GFLOPs.
PAPER = {
    'full': dict(ap=77.4, mem_mb=36141, gflops=76.59),
    'window': dict(ap=66.4, mem_mb=21161, gflops=66.31),
    'window-shift': dict(ap=76.4, mem_mb=21161, gflops=66.31),
    'window-pool': dict(ap=76.4, mem_mb=22893, gflops=66.39),
    'window-shift-pool': dict(ap=76.8, mem_mb=22893, gflops=66.39),
    'full-window': dict(ap=76.9, mem_mb=28594, gflops=69.94),
    'window16x12-shift-pool': dict(ap=77.1, mem_mb=26778, gflops=68.46),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'attention_table5.json'))
    p.add_argument('--row', help=argparse.SUPPRESS)  # internal: measure one config and exit
    return p.parse_args()


def build_backbone(path, **overrides):
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.update(overrides)
    init_default_scope('mmpose')
    return MODELS.build(cfg.model), tuple(cfg.model.backbone.img_size)


def gpu_peak_mb(model, x):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    model(x).square().mean().backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def measure_row_isolated(path, args):
    """Measure one config in a fresh process (keeps each row's memory separate)."""
    cmd = [sys.executable, '-m', 'benchmarks.attention_table5', '--row', path, '--device',
           args.device, '--batch', str(args.batch)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_row(path, args):
    model, (h, w) = build_backbone(path, fused_attn=False)
    model = model.to(args.device).train()
    x = torch.randn(args.batch, 3, h, w, device=args.device)
    fwd = lambda m: (lambda t: m._forward(t))  # noqa: E731
    row = dict(gflops=gflops(fwd(model), x) / args.batch,
               act_mb_explicit=saved_bytes(fwd(model), x, model.parameters()) / 2**20 / args.batch)
    for layer in model.backbone.layers:
        layer.attn.fused = True
    row['act_mb_fused'] = saved_bytes(fwd(model), x, model.parameters()) / 2**20 / args.batch
    if args.device.startswith('cuda'):
        row['gpu_peak_mb'] = gpu_peak_mb(fwd(model), x) / args.batch
    return row


def memory_fit(device):
    """Saved bytes of one explicit attention layer (C=768, 12 heads) on 16x16, 32x32
    and 64x64 token grids, and the log-log slope of bytes against tokens."""
    grids = [(16, 16), (32, 32), (64, 64)]
    tokens = [h * w for h, w in grids]
    fits = {}
    for name, attn in (('full', Attention(768, 12, fused=False)),
                       ('window 8x8', WindowAttention(768, 12, (8, 8), fused=False))):
        attn = attn.to(device)
        mem = []
        for hw in grids:
            x = torch.randn(1, hw[0] * hw[1], 768, device=device, requires_grad=True)
            mem.append(saved_bytes(lambda t: attn(t, hw), x, attn.parameters()) / 2**20)
        slopes = np.diff(np.log(mem)) / np.diff(np.log(tokens))
        fits[name] = dict(tokens=tokens, mb=mem, slopes=slopes.tolist(),
                          slope=float(np.polyfit(np.log(tokens), np.log(mem), 1)[0]))
    return fits


def main():
    args = parse_args()
    if args.row:
        print(json.dumps(measure_row(args.row, args)))
        return
    print(f'{args.device}: {cpu_line()}')
    results = dict(device=args.device, batch=args.batch, torch=torch.__version__, rows={})
    for res, tag in (('256x192', 'base-r2-{}'), ('576x432', 'base-{}')):
        print(f'\nViTPose-B {res} ' + ('(1/8 features)' if 'r2' in tag else '(1/16 features)'))
        rows = {}
        for name in ROWS:
            path = osp.join(CFG_DIR, f'td-hm_vitpose-{tag.format(name)}_8xb64-210e_coco-{res}.py')
            if not osp.isfile(path):  # 576x432 full attention: the plain config
                path = osp.join(CFG_DIR, '..', f'td-hm_vitpose-base_8xb64-210e_coco-{res}.py')
            rows[name] = measure_row_isolated(path, args)
        full = rows['full']
        header = ('| attention | GFLOPs | x full | act. MB explicit | x full | act. MB fused '
                  '| x full | paper AP | paper mem x full |')
        print(header + '\n|' + '---|' * 9)
        for name, r in rows.items():
            paper = PAPER.get(name, {}) if res == '256x192' else {}
            pm = paper['mem_mb'] / PAPER['full']['mem_mb'] if paper else None
            r.update(flops_ratio=r['gflops'] / full['gflops'],
                     mem_ratio_explicit=r['act_mb_explicit'] / full['act_mb_explicit'],
                     mem_ratio_fused=r['act_mb_fused'] / full['act_mb_fused'],
                     paper_ap=paper.get('ap'), paper_mem_ratio=pm,
                     paper_flops_ratio=paper['gflops'] / PAPER['full']['gflops']
                     if paper else None)
            print(f"| {name} | {r['gflops']:.1f} | {r['flops_ratio']:.3f} | "
                  f"{r['act_mb_explicit']:.0f} | {r['mem_ratio_explicit']:.3f} | "
                  f"{r['act_mb_fused']:.0f} | {r['mem_ratio_fused']:.3f} | "
                  f"{paper.get('ap', '')} | {'' if pm is None else f'{pm:.3f}'} |")
        results['rows'][res] = rows
    fits = memory_fit(args.device)
    print('\nSaved-for-backward MB of one explicit attention layer (C=768) vs tokens:')
    for name, f in fits.items():
        print(f"  {name:10s} N={f['tokens']}  MB={[round(m, 1) for m in f['mb']]}  "
              f"log-log slope {f['slope']:.2f} (between points: "
              f"{', '.join(f'{x:.2f}' for x in f['slopes'])})")
    results['memory_fit'] = fits
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
