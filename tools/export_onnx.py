"""Export a plugin pose model to ONNX (dynamic batch) and check it against PyTorch.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--part network|backbone]
                                [--batch 2] [--atol 1e-4] [--bench 0]
                                [--int8 [--calibration COCO_JSON | FOLDER] [--num 256]
                                 [--method percentile|minmax]]

``--part network`` (default) writes normalised images (B, 3, H, W) -> heatmaps
(B, K, H/4, W/4), as ``model._forward``, for deployment; ``--part backbone`` writes
images -> feature maps, the graph the demo's ``--backend onnxruntime`` and
``vitpose_plugin.deploy.use_onnxruntime`` run. BatchNorm is folded first. onnxruntime
(CPU) then runs the graph and its outputs must match PyTorch's within --atol; with
--bench N it also times N runs at batch 1 and 32 and prints images per second.

``--int8`` writes the backbone with its linear layers in int8 (onnxruntime QDQ,
calibrated on --calibration, with the default and check of ``tools/calibrate_int8.py``,
which also reports the int8 heatmaps' distance to fp32) and checks its features on
--batch calibration crops within --atol-int8 of fp32.
"""
import argparse
import time

import numpy as np
import torch
from mmpose.apis import init_model

from vitpose_plugin.deploy import export_onnx, fold_batchnorm, onnxruntime_session
from vitpose_plugin.deploy.int8 import (
    add_calibration_args,
    calibration_crops,
    check_calibration,
    quantize_backbone_graph,
)


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
    p.add_argument('--int8', action='store_true',
                   help='int8 backbone (implies --part backbone), calibrated on --calibration')
    add_calibration_args(p)
    p.add_argument('--atol-int8', type=float, default=0.5,
                   help='int8: largest accepted |int8 - fp32| in the backbone features, '
                   'relative to their largest magnitude')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.int8:
        try:
            check_calibration(args.calibration)
        except FileNotFoundError as e:
            raise SystemExit(f'error: {e}')
    model = init_model(args.config, args.checkpoint, device='cpu')
    n = fold_batchnorm(model)
    w, h = model.cfg.codec.input_size
    if args.int8:
        return export_int8(model, args)
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


def export_int8(model, args):
    """Write the int8 backbone graph and compare its features with fp32 on real crops."""
    try:
        quantize_backbone_graph(model, args.out, args.calibration, args.num, args.method)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    x = torch.cat(list(calibration_crops(model, args.calibration, args.batch)))
    with torch.no_grad():
        want = model.backbone(x)
    want = want[-1] if isinstance(want, (tuple, list)) else want
    got = onnxruntime_session(args.out)(x)
    got = got[-1] if isinstance(got, (tuple, list)) else got
    rel = float((got - want).abs().max() / want.abs().max())
    print(f'{args.out}: int8 backbone, calibrated on {args.calibration}; max |int8 - fp32| '
          f'= {rel:.3f} of the largest feature')
    if rel > args.atol_int8:
        raise SystemExit(f'error: int8 features differ from fp32 by {rel:.3f} of their '
                         f'largest magnitude > {args.atol_int8}')


if __name__ == '__main__':
    main()
