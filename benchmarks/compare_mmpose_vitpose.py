"""Heatmap parity of the plugin's ViTPose with MMPose's own ViTPose.

MMPose builds ViTPose from mmpretrain's VisionTransformer. This script builds
MMPose's config, saves its (randomly initialised, or --checkpoint) weights, loads
that file into the plugin's config of the same size, and compares heatmaps on the
same inputs at several resolutions. Prints a table and writes JSON.

    pip install --no-deps -r requirements/benchmarks.txt   # mmpretrain, for MMPose's model
    python -m benchmarks.compare_mmpose_vitpose [--archs small base] [--out results.json]
"""
import argparse
import json
import os
import os.path as osp
import tempfile

import torch
from mmpose.apis import init_model

from benchmarks.mmpose_reference import PLUGIN_CFG, REPO, mmpose_model


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--archs', nargs='+', default=['small', 'base'],
                   choices=['small', 'base', 'large', 'huge'])
    p.add_argument('--sizes', nargs='+', default=['256x192', '384x288'])
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'compare_mmpose_vitpose.json'))
    return p.parse_args()


def main():
    args = parse_args()
    rows = []
    for arch in args.archs:
        for simple in ('', '-simple'):
            ref = mmpose_model(arch, simple)
            with tempfile.TemporaryDirectory() as tmp:
                path = osp.join(tmp, 'mmpose_vitpose.pth')
                torch.save({'state_dict': ref.state_dict()}, path)
                ours = init_model(PLUGIN_CFG.format(arch=arch, simple=simple), path, device='cpu')
            for size in args.sizes:
                h, w = map(int, size.split('x'))
                x = torch.randn(args.batch, 3, h, w)
                with torch.no_grad():
                    a, b = ref._forward(x), ours._forward(x)
                diff = (a - b).abs().max().item()
                rows.append(dict(arch=arch, decoder='simple' if simple else 'classic',
                                 input=size, max_abs_diff=diff,
                                 heatmap_absmax=a.abs().max().item(), ok=diff <= 1e-4))
                print(f'{arch:6s} {rows[-1]["decoder"]:8s} {size:8s} '
                      f'max|diff| {diff:.2e}  (heatmap max {rows[-1]["heatmap_absmax"]:.3f})')
    print('\n| arch | decoder | input | max abs diff | <= 1e-4 |\n|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["arch"]} | {r["decoder"]} | {r["input"]} | {r["max_abs_diff"]:.2e} | '
              f'{"yes" if r["ok"] else "NO"} |')
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(torch=torch.__version__, rows=rows), f, indent=2)
    print(f'wrote {args.out}')
    if not all(r['ok'] for r in rows):
        raise SystemExit(1)


if __name__ == '__main__':
    main()
