"""Inference speed of the plugin's ViTPose against MMPose's own, same weights.

In one process, for each size: build MMPose's ViTPose (mmpretrain backbone), load its
weights into the plugin's config (BatchNorm folded), and time both with alternating
runs at each batch size, fp32 and bf16 (autocast). Reports images per second, the
ratio to MMPose's fp32, the max heatmap difference to MMPose's fp32 output, and the
fraction of this machine's measured matmul peak (same dtype) that the model's FLOPs
reach. Prints a table and writes JSON.

With ``--onnx`` the plugin model exported by ``tools/export_onnx.py`` also runs under
onnxruntime (CPU), with ``--compile`` under ``torch.compile``, and with ``--hf`` Hugging
Face transformers' ``VitPoseForPoseEstimation`` runs with the same weights
(``benchmarks/hf_vitpose.py``); all in fp32, timed in the same alternation, each with
its own heatmap difference to MMPose's.

    pip install --no-deps -r requirements/benchmarks.txt   # mmpretrain, for MMPose's model
    python benchmarks/speed.py [--archs small base] [--batches 1 32] [--device cpu]
                               [--onnx] [--compile] [--hf]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
try:  # mmpretrain's multimodal models break on recent transformers; none is used here
    import mmpretrain.utils.dependency as _mmpretrain_deps
    _mmpretrain_deps.WITH_MULTIMODAL = False
except ImportError:
    pass
from compare_mmpose_vitpose import PLUGIN_CFG, REPO, mmpose_model  # noqa: E402
from mmpose.apis import init_model  # noqa: E402

from vitpose_plugin.deploy import fold_batchnorm  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--archs', nargs='+', default=['small', 'base'],
                   choices=['small', 'base', 'large', 'huge'])
    p.add_argument('--batches', nargs='+', type=int, default=[1, 32])
    p.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    p.add_argument('--device', default='cpu')
    p.add_argument('--onnx', action='store_true', help='add onnxruntime (fp32, CPU)')
    p.add_argument('--compile', action='store_true', help='add torch.compile (fp32)')
    p.add_argument('--hf', action='store_true', help="add HF transformers' VitPose (fp32)")
    p.add_argument('--seconds', type=float, default=6.0, help='timing budget per measurement')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'speed.json'))
    return p.parse_args()


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def matmul_peak(device, dtype, n=2048, seconds=2.0):
    """Measured TFLOP/s of a square matmul: what 100% means on this machine."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t0, runs = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        a @ b
        runs += 1
    sync(device)
    return 2 * n**3 * runs / (time.perf_counter() - t0) / 1e12


def timed(fn, device, seconds):
    fn()  # warm-up
    sync(device)
    t0, runs = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds or runs < 2:
        fn()
        runs += 1
    sync(device)
    return (time.perf_counter() - t0) / runs


def main():
    args = parse_args()
    torch.manual_seed(0)
    dtypes = {'fp32': torch.float32, 'bf16': torch.bfloat16}
    peaks = {p: matmul_peak(args.device, dtypes[p]) for p in ('fp32', 'bf16')}
    print(f'matmul peak on {args.device}: fp32 {peaks["fp32"]:.3f}, bf16 {peaks["bf16"]:.3f} '
          f'TFLOP/s ({torch.get_num_threads()} threads)')
    rows = []
    for arch in args.archs:
        ref = mmpose_model(arch, '').to(args.device)
        path = osp.join(REPO, 'benchmarks', 'results', f'_mmpose_vitpose_{arch}.pth')
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.save({'state_dict': ref.state_dict()}, path)
        ours = init_model(PLUGIN_CFG.format(arch=arch, simple=''), path, device=args.device)
        os.remove(path)
        hf = None
        if args.hf:  # before BN folding: transformers' head has its BatchNorms
            from hf_vitpose import hf_from_plugin, hf_heatmaps
            hf = hf_heatmaps(hf_from_plugin(ours, arch).to(args.device))
        fold_batchnorm(ours)
        x1 = torch.randn(1, 3, 256, 192, device=args.device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            ours._forward(x1)
        gflop = counter.get_total_flops() / 1e9
        extra = extra_impls(ours, arch, args)  # name -> callable(x) -> heatmaps (fp32)
        if hf is not None:
            extra['transformers'] = hf
        for batch in args.batches:
            x = torch.randn(batch, 3, 256, 192, device=args.device)
            with torch.no_grad():
                want = ref._forward(x)
                results = {}
                for precision in args.precisions:
                    ours.test_cfg['precision'] = precision
                    diff = (ours._forward(x) - want).abs().max().item()
                    results[precision] = dict(diff=diff)

                def run_ref(p):
                    if p == 'fp32':
                        return lambda: ref._forward(x)
                    return lambda: _autocast(args.device, lambda: ref._forward(x))

                def run_ours(p):
                    def fn():
                        ours.test_cfg['precision'] = p
                        return ours._forward(x)
                    return fn

                for name, impl in extra.items():
                    results[name] = dict(diff=(impl(x) - want).abs().max().item())

                # alternate: mmpose fp32, ours fp32, extras, mmpose bf16, ours bf16, twice
                times = {}
                for _ in range(2):
                    for p in args.precisions:
                        pairs = [('mmpose', run_ref(p)), ('plugin', run_ours(p))]
                        if p == 'fp32':
                            pairs += [(name, (lambda f: lambda: f(x))(impl))
                                      for name, impl in extra.items()]
                        for who, fn in pairs:
                            t = timed(fn, args.device, args.seconds / 2)
                            times[(who, p)] = min(times.get((who, p), t), t)
            base = batch / times[('mmpose', 'fp32')] if ('mmpose', 'fp32') in times else None
            for p in args.precisions:
                for who in ('mmpose', 'plugin') + (tuple(extra) if p == 'fp32' else ()):
                    ips = batch / times[(who, p)]
                    diff = (results[who]['diff'] if who in extra else results[p]['diff']
                            if who == 'plugin' else 0.0 if p == 'fp32' else None)
                    rows.append(dict(
                        arch=arch, batch=batch, precision=p, impl=who, img_per_s=ips,
                        ratio_to_mmpose_fp32=ips / base if base else float('nan'),
                        max_abs_diff_to_mmpose_fp32=diff,
                        gflop_per_img=gflop,
                        frac_matmul_peak=ips * gflop / 1e3 / peaks[p]))
                    r = rows[-1]
                    print(f"{arch:6s} b{batch:<3d} {p} {who:7s} {ips:8.2f} img/s  "
                          f"x{r['ratio_to_mmpose_fp32']:.2f}  peak {r['frac_matmul_peak']:.0%}")
    print('\n| arch | batch | precision | impl | img/s | × MMPose fp32 | max \\|Δ\\| vs MMPose fp32 '
          '| % matmul peak |\n|---|---|---|---|---|---|---|---|')
    for r in rows:
        d = r['max_abs_diff_to_mmpose_fp32']
        print(f"| {r['arch']} | {r['batch']} | {r['precision']} | {r['impl']} | "
              f"{r['img_per_s']:.2f} | {r['ratio_to_mmpose_fp32']:.2f} | "
              f"{'' if d is None else f'{d:.1e}'} | {r['frac_matmul_peak']:.0%} |")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(device=args.device, threads=torch.get_num_threads(),
                       torch=torch.__version__, matmul_peak_tflops=peaks, rows=rows), f, indent=2)
    print(f'wrote {args.out}')


def extra_impls(model, arch, args):
    """Other runtimes of the same (BN-folded) plugin model, fp32."""
    impls = {}
    model.test_cfg['precision'] = 'fp32'
    if args.compile:
        compiled = torch.compile(model._forward)
        t0 = time.perf_counter()
        with torch.no_grad():
            compiled(torch.randn(1, 3, 256, 192, device=args.device))
        print(f'{arch}: torch.compile took {time.perf_counter() - t0:.0f} s (first call)')

        def run_compiled(x):
            with torch.no_grad():
                return compiled(x)
        impls['plugin+compile'] = run_compiled
    if args.onnx:
        from vitpose_plugin.deploy.onnx import export_onnx, onnxruntime_heatmaps
        path = osp.join(REPO, 'benchmarks', 'results', f'_vitpose_{arch}.onnx')
        export_onnx(model.cpu(), path, (256, 192))
        model.to(args.device)
        impls['onnxruntime'] = onnxruntime_heatmaps(path)
    return impls


def _autocast(device, fn):
    with torch.autocast(device_type=device.split(':')[0], dtype=torch.bfloat16):
        return fn()


if __name__ == '__main__':
    main()
