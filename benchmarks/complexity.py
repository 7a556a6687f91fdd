"""Parameters and GFLOPs of every config, beside the papers' figures on their conventions.

For each config this builds the model (no weights) and runs one image of the config's
input size under torch's FlopCounterMode, one multiply-add counted as one FLOP as in the
pose papers. Columns:

* ``GFLOPs``: every matmul, convolution and the two attention matmuls (attention runs on
  torch's math kernel, so that fused kernels cannot hide from the counter);
* ``backbone``: the backbone alone; ViTPose's paper quotes this (17.1 for ViTPose-B);
* ``w/o attn``: without the attention matmuls;
* ``paper conv.``: ours recounted on the convention of the paper quoted, where it is
  not ours:
  - TransPose (the authors' fvcore-style counter): a transposed convolution counted at
    its output resolution with C_out x C_out weights (4x the multiply-adds of
    TransPose-R's 256 -> 256 deconvolution), plus element-wise operations (BatchNorm 4,
    softmax 5, add / mul / ReLU 1 per element; their training-mode dropout excluded);
  - TokenPose (HRNet's get_model_summary): convolutions, and each Linear as
    output size x the token count N (their rule reads input.size(1)), no attention
    matmuls, divided by 1024^3 instead of 1e9.

The published figures, their sources and conventions are read from the metafiles
(``configs/**/*.yml``). ``--metafiles`` writes the measured parameters and GFLOPs back
into them.

    python -m benchmarks.complexity [--configs GLOB ...] [--out JSON] [--metafiles]
"""
import argparse
import glob
import json
import os
import os.path as osp

import torch
import yaml
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT = ['vitpose/coco/td-hm_vitpose-*.py', 'swin_pose/coco/*.py', 'tokenpose/coco/*.py',
           'transpose/coco/*.py']
ATTENTION_OPS = ('bmm', 'matmul')  # the attention matmuls under the math kernel
# element-wise FLOPs per output element in the TransPose authors' counter
TRANSPOSE_ELEMENTWISE = {'native_batch_norm': 4, '_native_batch_norm_legit_no_training': 4,
                         '_softmax': 5, 'add': 1, 'add_': 1, 'mul': 1, 'mul_': 1, 'sub': 1,
                         'div': 1, 'relu': 1, 'relu_': 1}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--configs', nargs='+', default=DEFAULT,
                   help='globs under configs/ (default: the pose model families)')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'complexity.json'))
    p.add_argument('--metafiles', action='store_true',
                   help='write Parameters (M) / FLOPs (G) into the configs\' metafiles')
    return p.parse_args()


class _Elementwise(TorchDispatchMode):
    """FLOPs of element-wise operations with the TransPose authors' per-element costs."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        cost = TRANSPOSE_ELEMENTWISE.get(func.overloadpacket.__name__)
        if cost:
            first = out[0] if isinstance(out, (tuple, list)) else out
            self.flops += cost * first.numel()
        return out


def transpose_convention(model, run, x) -> float:
    """GFLOPs as the TransPose authors' counter gives them (see the module docstring)."""
    extra = []

    def deconv(m, inputs, output):  # theirs: out_hw * C_out * C_out * k^2; ours: in_hw * ...
        k = m.weight.shape[2] * m.weight.shape[3]
        theirs = output.shape[2] * output.shape[3] * m.out_channels**2 * k
        ours = inputs[0].shape[2] * inputs[0].shape[3] * m.in_channels * m.out_channels * k
        extra.append(theirs - ours)

    hooks = [m.register_forward_hook(deconv) for m in model.modules()
             if isinstance(m, torch.nn.ConvTranspose2d)]
    counter = _Elementwise()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as c, \
            counter:
        run(x)
    for h in hooks:
        h.remove()
    return (c.get_total_flops() / 2 + sum(extra) + counter.flops) / 1e9


def tokenpose_convention(model, run, x) -> float:
    """GFLOPs as HRNet's get_model_summary (TokenPose) gives them."""
    linear = []

    def hook(m, inputs, output):
        linear.append(output.numel() * inputs[0].size(1))

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, torch.nn.Linear)]
    with torch.no_grad(), FlopCounterMode(display=False) as c:
        run(x)
    for h in hooks:
        h.remove()
    conv = sum(v for k, v in c.get_flop_counts()['Global'].items() if 'convolution' in str(k))
    return (conv / 2 + sum(linear)) / 1024**3


def measure(path):
    """Params (M) of the model and of its backbone, GFLOPs of the whole forward, of the
    backbone alone, without the attention matmuls and on the quoted paper's convention,
    and the input (H, W)."""
    from mmpose.registry import MODELS
    # nn.MultiheadAttention's inference fast path is one fused op that the counters
    # cannot see into (TransPose's projections, softmax and attention matmuls)
    torch.backends.mha.set_fastpath_enabled(False)
    cfg = Config.fromfile(path)
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    model.eval()
    if 'codec' in cfg:
        w, h = cfg.codec['input_size']
    else:  # MAE pre-training: the backbone's input size
        h, w = cfg.model.backbone.img_size
    x = torch.randn(1, 3, h, w)
    run = model._forward if hasattr(model, '_forward') else (lambda t: model(t, mode='tensor'))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as c:
        run(x)
    flops = c.get_flop_counts()
    total = sum(flops['Global'].values()) / 2e9
    attention = sum(v for k, v in flops['Global'].items()
                    if str(k).split('.')[-1] in ATTENTION_OPS) / 2e9
    backbone = next((k for k in flops if k.split('.')[-1] == 'backbone' or
                     k == type(model.backbone).__name__), None)
    row = dict(params_m=sum(p.numel() for p in model.parameters()) / 1e6,
               backbone_params_m=sum(p.numel() for p in model.backbone.parameters()) / 1e6,
               gflops=total,
               backbone_gflops=sum(flops[backbone].values()) / 2e9 if backbone else None,
               gflops_without_attention=total - attention, input=[h, w])
    name = osp.basename(path)
    if 'transpose' in name:
        row['paper_convention_gflops'] = transpose_convention(model, run, x)
    elif 'tokenpose' in name:
        row['paper_convention_gflops'] = tokenpose_convention(model, run, x)
    return row


def metafile_entries():
    """{config path: (metafile path, model entry)} of every metafile."""
    entries = {}
    for meta in glob.glob(osp.join(REPO, 'configs', '**', '*.yml'), recursive=True):
        with open(meta) as f:
            for model in yaml.safe_load(f)['Models']:
                entries[osp.join(REPO, model['Config'])] = (meta, model)
    return entries


def write_metafiles(rows):
    by_file = {}
    for meta, model in metafile_entries().values():
        by_file.setdefault(meta, [])
    for meta in by_file:
        with open(meta) as f:
            head = [line for line in f.read().splitlines() if line.startswith('#')]
        with open(meta) as f:
            doc = yaml.safe_load(f)
        for model in doc['Models']:
            row = rows.get(osp.join(REPO, model['Config']))
            if row:
                model['Metadata'].update({'Parameters (M)': round(row['params_m'], 2),
                                          'FLOPs (G)': round(row['gflops'], 2)})
        with open(meta, 'w') as f:
            f.write('\n'.join(head + ['']) if head else '')
            yaml.safe_dump(doc, f, sort_keys=False, width=100, allow_unicode=True)


def main():
    args = parse_args()
    import vitpose_plugin  # noqa: F401
    paths = sorted({p for g in args.configs for p in glob.glob(
        osp.join(REPO, 'configs', g), recursive=True)})
    if not paths:
        raise SystemExit(f'no config matches {args.configs} under {REPO}/configs')
    papers = metafile_entries()
    head = (f"{'config':56s} {'input':>8s} {'params M':>9s} {'paper':>6s} {'GFLOPs':>7s} "
            f"{'backbone':>8s} {'w/o attn':>8s} {'paper conv.':>11s} {'paper':>6s} "
            f"{'AP':>5s}  source")
    print(head + '\n' + '-' * len(head))
    fmt = lambda v, f: format(v, f) if v is not None else '-'  # noqa: E731
    rows = {}
    for path in paths:
        name = osp.splitext(osp.basename(path))[0]
        row = measure(path)
        meta = papers.get(path, (None, {}))[1].get('Metadata', {})
        results = papers.get(path, (None, {}))[1].get('Results') or [{}]
        row.update(config=osp.relpath(path, REPO), paper_params_m=meta.get('Paper Parameters (M)'),
                   paper_gflops=meta.get('Paper FLOPs (G)'),
                   paper_flops_convention=meta.get('Paper FLOPs convention'),
                   paper_ap=results[0].get('Metrics', {}).get('AP'),
                   paper_source=results[0].get('Source', ''))
        rows[path] = row
        h, w = row['input']
        print(f"{name[:56]:56s} {h:>4d}x{w:<3d} {row['params_m']:9.2f} "
              f"{fmt(row['paper_params_m'], '6.1f'):>6s} {row['gflops']:7.2f} "
              f"{fmt(row['backbone_gflops'], '8.2f'):>8s} "
              f"{row['gflops_without_attention']:8.2f} "
              f"{fmt(row.get('paper_convention_gflops'), '11.2f'):>11s} "
              f"{fmt(row['paper_gflops'], '6.1f'):>6s} {fmt(row['paper_ap'], '5.1f'):>5s}  "
              f"{row['paper_source']}", flush=True)
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(list(rows.values()), f, indent=1)
    print(f'wrote {args.out}')
    if args.metafiles:
        write_metafiles(rows)
        print('updated the metafiles')


if __name__ == '__main__':
    main()
