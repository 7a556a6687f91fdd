"""Export a plugin pose model to ONNX (heatmaps, dynamic batch) and check it.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--batch 2] [--bench 0]

The graph maps normalised images (B, 3, H, W) to heatmaps (B, K, H/4, W/4), as
``model._forward``; BatchNorm is folded first. onnxruntime (CPU) then runs it and
the result must match PyTorch within --atol (1e-4); with --bench N it also times N
runs at batch 1 and 32 and prints images per second.
"""
import argparse
import time

import numpy as np
import torch
from mmpose.apis import init_model

from vitpose_plugin.deploy import fold_batchnorm
from vitpose_plugin.deploy.onnx import export_onnx, onnxruntime_heatmaps


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help='pose weights (any layout the plugin reads)')
    p.add_argument('out', help='the .onnx file to write')
    p.add_argument('--batch', type=int, default=2, help='batch of the check')
    p.add_argument('--atol', type=float, default=1e-4)
    p.add_argument('--bench', type=int, default=0, help='timed onnxruntime runs per batch')
    p.add_argument('--opset', type=int, default=18)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = init_model(args.config, args.checkpoint, device='cpu')
    n = fold_batchnorm(model)
    w, h = model.cfg.codec.input_size
    net = export_onnx(model, args.out, (h, w), args.opset)
    run = onnxruntime_heatmaps(args.out)
    x = torch.randn(args.batch, 3, h, w)
    with torch.no_grad():
        want = net(x).numpy()
    got = run(x).numpy()
    diff = float(np.abs(got - want).max())
    print(f'{args.out}: heatmaps {tuple(got.shape)}, {n} BatchNorm folded, '
          f'max |onnxruntime - pytorch| = {diff:.2e}')
    if diff > args.atol:
        raise SystemExit(f'error: ONNX output differs from PyTorch by {diff:.2e} > {args.atol}')
    for b in ([1, 32] if args.bench else []):
        xb = torch.randn(b, 3, h, w)
        run(xb)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.bench):
            run(xb)
        ips = b * args.bench / (time.perf_counter() - t0)
        print(f'onnxruntime CPU, batch {b}: {ips:.2f} img/s')


if __name__ == '__main__':
    main()
