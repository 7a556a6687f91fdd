"""Export a plugin pose model to ONNX (dynamic batch) and check it against PyTorch.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--part network|backbone]
                                [--batch 2] [--atol 1e-4] [--bench 0]

``--part network`` (default) writes normalised images (B, 3, H, W) -> heatmaps
(B, K, H/4, W/4), as ``model._forward``, for deployment; ``--part backbone`` writes
images -> feature maps, the graph the demo's ``--backend onnxruntime`` and
``vitpose_plugin.deploy.use_onnxruntime`` run. BatchNorm is folded first. onnxruntime
(CPU) then runs the graph and its outputs must match PyTorch's within --atol; with
--bench N it also times N runs at batch 1 and 32 and prints images per second.
"""
import argparse
import time

import numpy as np
import torch
from mmpose.apis import init_model

from vitpose_plugin.deploy import export_onnx, fold_batchnorm, onnxruntime_session


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help='pose weights (any layout the plugin reads)')
    p.add_argument('out', help='the .onnx file to write')
    p.add_argument('--part', choices=['network', 'backbone'], default='network')
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
    net = export_onnx(model, args.out, (h, w), args.opset, part=args.part)
    run = onnxruntime_session(args.out)
    x = torch.randn(args.batch, 3, h, w)
    with torch.no_grad():
        want = net(x)
    want = want if isinstance(want, tuple) else (want, )
    got = run(x)
    diff = max(float(np.abs(g.numpy() - t.numpy()).max()) for g, t in zip(got, want))
    print(f'{args.out}: {args.part}, outputs {[tuple(g.shape) for g in got]}, {n} BatchNorm '
          f'folded, max |onnxruntime - pytorch| = {diff:.2e}')
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
