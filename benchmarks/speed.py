"""Inference speed of the plugin's ViTPose, fp32 and int8, against MMPose's own.

In one process, for each size: build MMPose's ViTPose (mmpretrain backbone; needs
``pip install --no-deps -r requirements/benchmarks.txt``, else it is left out and the
plugin's fp32 is the reference), load its weights into the plugin's config (BatchNorm
folded), and time every runtime with alternating runs at each batch size:

* ``mmpose``: MMPose's own ViTPose, fp32;
* ``plugin``: the plugin, PyTorch eager, fp32;
* ``onnxruntime``: the backbone graph under onnxruntime (all graph optimisations), fp32;
* ``int8``: the backbone's linear layers int8 (onnxruntime QDQ, per-channel weights,
  calibrated on the shared COCO person crops; ``vitpose_plugin.deploy.int8``);
* ``int8-dynamic``: onnxruntime's ``quantize_dynamic`` of the same layers (no calibration);
* ``torch-int8-dynamic``: PyTorch's own x86 path, ``torch.ao.quantization.quantize_dynamic``
  on the backbone's Linear layers;
* with ``--compile``: ``set_inference_precision(model, precision, compile=True)``
  (``torch.compile`` with inductor's freezing; fp32, and bf16 with ``--precisions
  bf16``); its first call at each batch size compiles, and that time is reported;
  with ``--hf``: transformers' ViTPose (exported by ``tools/export_hf.py``'s mapping);
* with ``--precisions bf16``: ``plugin-bf16``, the shipped path
  (``set_inference_precision(model, 'bf16')``: weights in bf16, norm layers fp32, fp32
  heatmaps), and ``plugin-bf16-autocast``, fp32 weights under ``torch.autocast``;
* ``auto``: what ``set_inference_precision(model, 'auto')`` picks on this machine (given
  the calibration data).

The head (the classic decoder, BN folded) is PyTorch fp32 in every plugin row but
``plugin-bf16`` and ``auto``. Each row gives images per second, the ratio to MMPose's
fp32, the spread of the timed rounds (slowest / fastest), the max heatmap difference to
MMPose's fp32 and the fraction of this machine's measured fp32 matmul peak reached. The
CPU's model and instruction-set flags are printed beside the table and written with it;
compare only rows of one run. ``--profile`` prints where the plugin's fp32 time goes.

    python -m benchmarks.speed [--archs small base] [--batches 1 16] [--compile] [--hf]
        [--precisions fp32 bf16] [--rounds 3] [--profile]
        [--calibration ../shared/data/coco/test_coco.json]
"""
import argparse
import copy
import json
import os
import os.path as osp
import tempfile
import time

import torch
from mmpose.apis import init_model

from benchmarks.measure import cpu_description, cpu_line, gflops, matmul_peak, sync, timed
from benchmarks.mmpose_reference import PLUGIN_CFG, REPO
from vitpose_plugin.deploy import (
    export_onnx,
    fold_batchnorm,
    inference_precision,
    onnxruntime_session,
    set_inference_precision,
)
from vitpose_plugin.deploy.int8 import quantize_backbone_graph

SHARED = os.environ.get('VITPOSE_SHARED_DATA', osp.join(REPO, '..', 'shared', 'data'))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--archs', nargs='+', default=['small', 'base'],
                   choices=['small', 'base', 'large', 'huge'])
    p.add_argument('--batches', nargs='+', type=int, default=[1, 16])
    p.add_argument('--precisions', nargs='+', default=['fp32'], choices=['fp32', 'bf16'])
    p.add_argument('--impls', nargs='+', help='only these rows (default: all that apply)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--compile', action='store_true',
                   help='add the compiled paths (fp32, and bf16 with --precisions bf16)')
    p.add_argument('--hf', action='store_true', help="add transformers' VitPose (fp32)")
    p.add_argument('--profile', action='store_true', help='fp32 time by operator')
    p.add_argument('--calibration', default=osp.join(SHARED, 'coco', 'test_coco.json'),
                   help='int8 calibration crops (COCO json or image folder)')
    p.add_argument('--checkpoint', help="pose weights for every size ({arch} is replaced); "
                   "default: MMPose's model with random weights")
    p.add_argument('--seconds', type=float, default=6.0, help='timing budget per measurement')
    p.add_argument('--rounds', type=int, default=2,
                   help='alternating timed rounds; each row keeps its best, and the spread')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'speed.json'))
    return p.parse_args()


def reference_model(arch, device):
    """MMPose's own ViTPose, or None without mmpretrain."""
    try:
        from benchmarks.mmpose_reference import mmpose_model
        return mmpose_model(arch).to(device)
    except (ImportError, KeyError) as e:
        print(f'MMPose\'s ViTPose-{arch} is left out ({type(e).__name__}: {e}); install '
              'requirements/benchmarks.txt to compare with it')
        return None


def plugin_runtimes(model, arch, args, tmp):
    """name -> (callable images -> heatmaps fp32). ``model`` is the BN-folded plugin."""
    head = model.head
    run = {'plugin': model._forward}
    h, w = 256, 192
    backbone = osp.join(tmp, f'{arch}_backbone.onnx')
    export_onnx(model.cpu(), backbone, (h, w), part='backbone')
    model.to(args.device)
    sessions = {'onnxruntime': backbone}
    if args.calibration and osp.exists(args.calibration):
        sessions['int8'] = quantize_backbone_graph(model.cpu(), osp.join(tmp, f'{arch}_int8.onnx'),
                                                   args.calibration)
        model.to(args.device)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    dynamic = osp.join(tmp, f'{arch}_int8_dynamic.onnx')
    quantize_dynamic(backbone, dynamic, per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=['MatMul'])
    sessions['int8-dynamic'] = dynamic
    for name, path in sessions.items():
        session = onnxruntime_session(path)
        run[name] = (lambda s: lambda x: head.forward(s(x)))(session)
    if args.device == 'cpu':
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model.backbone),
                                                   {torch.nn.Linear}, dtype=torch.qint8)
        run['torch-int8-dynamic'] = lambda x: head.forward(q(x))
    if 'bf16' in args.precisions:
        def autocast(x, m=model):
            with torch.autocast(device_type=args.device.split(':')[0], dtype=torch.bfloat16):
                return m._forward(x).float()
        run['plugin-bf16-autocast'] = autocast
        bf16 = set_inference_precision(copy.deepcopy(model), 'bf16')
        run['plugin-bf16'] = bf16._forward
    auto = set_inference_precision(copy.deepcopy(model), 'auto',
                                   calibration=sessions.get('int8') and args.calibration,
                                   onnx_file=sessions.get('int8'))
    print(f'{arch}: auto picked {inference_precision(auto)}')
    run['auto'] = auto._forward
    if args.compile:  # the shipped switch: set_inference_precision(..., compile=True)
        for name, precision in (('plugin', 'fp32'), ('plugin-bf16', 'bf16')):
            if precision in args.precisions:
                compiled = set_inference_precision(copy.deepcopy(model), precision,
                                                   compile=True)
                run[f'{name}+compile'] = compiled._forward
    return run


def hf_runtime(model, tmp):
    """transformers' VitPoseForPoseEstimation with the plugin model's weights."""
    from safetensors.torch import save_file
    from transformers import VitPoseForPoseEstimation

    from vitpose_plugin.checkpoint.hf_vitpose import to_transformers, transformers_config
    folder = osp.join(tmp, 'hf')
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.contiguous() for k, v in to_transformers(model.state_dict()).items()},
              osp.join(folder, 'model.safetensors'))
    with open(osp.join(folder, 'config.json'), 'w') as f:
        json.dump(transformers_config(model, model.dataset_meta), f)
    hf = VitPoseForPoseEstimation.from_pretrained(folder).eval()
    return lambda x: hf(pixel_values=x).heatmaps


def profile(model, device):
    """Where the plugin's fp32 forward spends its time, by operator (batch 32)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    x = torch.randn(32, 3, 256, 192, device=device)
    model._forward(x)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        model._forward(x)
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=12))


def main():
    args = parse_args()
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    peak = matmul_peak(args.device, torch.float32)
    peak_bf16 = matmul_peak(args.device, torch.bfloat16) if 'bf16' in args.precisions else None
    print(f'{args.device}: {cpu_line()}; fp32 matmul peak {peak:.3f} TFLOP/s' +
          (f', bf16 {peak_bf16:.3f} TFLOP/s' if peak_bf16 else ''))
    rows, tmp = [], tempfile.mkdtemp(prefix='vitpose_speed_')
    for arch in args.archs:
        ref = reference_model(arch, args.device)
        path = osp.join(tmp, f'{arch}.pth')
        if args.checkpoint:
            path = args.checkpoint.format(arch=arch)
        elif ref is not None:
            torch.save({'state_dict': ref.state_dict()}, path)
        else:
            path = None
        model = init_model(PLUGIN_CFG.format(arch=arch, simple=''), path, device=args.device)
        if path is None:  # random BN statistics matter for the comparison too
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        hf_model = None
        if args.hf:  # before BN folding: transformers' head has its BatchNorms
            hf_model = hf_runtime(model, tmp)
        fold_batchnorm(model)
        gflop = gflops(model._forward, torch.randn(1, 3, 256, 192, device=args.device))
        runtimes = {}
        if ref is not None:
            runtimes['mmpose'] = ref._forward
        runtimes.update(plugin_runtimes(model, arch, args, tmp))
        if hf_model is not None:
            runtimes['transformers'] = hf_model
        if args.impls:
            runtimes = {k: v for k, v in runtimes.items() if k in args.impls or k == 'mmpose'}
        if args.profile:
            profile(model, args.device)
        reference = 'mmpose' if 'mmpose' in runtimes else 'plugin'
        for batch in args.batches:
            x = torch.randn(batch, 3, 256, 192, device=args.device)
            want = runtimes[reference](x)
            diffs, first_call = {}, {}
            for k, fn in runtimes.items():  # the first call (compiles, for +compile)
                t0 = time.perf_counter()
                diffs[k] = float((fn(x) - want).abs().max())
                first_call[k] = time.perf_counter() - t0
                if k.endswith('+compile'):
                    print(f'{arch} b{batch}: first call of {k} (compiles) took '
                          f'{first_call[k]:.1f} s', flush=True)
            rounds = {name: [] for name in runtimes}
            for _ in range(args.rounds):  # alternate, keep each runtime's best
                for name, fn in runtimes.items():
                    rounds[name].append(timed(lambda: fn(x), args.device,
                                              args.seconds / args.rounds))
            times = {name: min(t) for name, t in rounds.items()}
            base = batch / times[reference]
            for name in runtimes:
                ips = batch / times[name]
                spread = max(rounds[name]) / times[name]
                rows.append(dict(arch=arch, batch=batch, impl=name, img_per_s=ips,
                                 ratio=ips / base, reference=reference, spread=spread,
                                 round_seconds=rounds[name], max_abs_diff=diffs[name],
                                 first_call_s=first_call[name],
                                 gflop_per_img=gflop, frac_fp32_peak=ips * gflop / 1e3 / peak))
                print(f"{arch:6s} b{batch:<3d} {name:21s} {ips:8.2f} img/s  x{ips / base:.2f}"
                      f"  spread {spread:.2f}  |diff| {diffs[name]:.1e}", flush=True)
            sync(args.device)
    print(f'\n{cpu_line()}\n\n| arch | batch | runtime | img/s | × {rows[0]["reference"]} fp32 '
          '| spread | max \\|Δ\\| heatmaps | % fp32 matmul peak |\n|' + '---|' * 8)
    for r in rows:
        print(f"| {r['arch']} | {r['batch']} | {r['impl']} | {r['img_per_s']:.2f} | "
              f"{r['ratio']:.2f} | {r['spread']:.2f} | {r['max_abs_diff']:.1e} | "
              f"{r['frac_fp32_peak']:.0%} |")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(cpu=cpu_description(), device=args.device, torch=torch.__version__,
                       fp32_matmul_peak_tflops=peak, bf16_matmul_peak_tflops=peak_bf16,
                       rows=rows), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
