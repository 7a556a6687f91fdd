"""Training step time in fp32 and in bf16 mixed precision, and where the time goes.

ViTPose (default B, batch 16, 256x192, classic decoder), one training step = forward
(MSE loss on random targets), backward and AdamW step, run through the plugin's
``MixedPrecisionOptimWrapper`` (``dtype='float32'``: a plain step; ``'bfloat16'``: bf16
autocast, fp32 weights, gradients and optimiser state). The two alternate in one
process for --rounds rounds; each keeps its fastest step, and the spread (slowest /
fastest). Each phase (forward, backward, optimiser step) is timed too, so what bf16
leaves in fp32 shows. Prints the CPU's model and instruction-set flags beside the
table and writes JSON.

    python -m benchmarks.train_precision [--arch base] [--batch 16] [--rounds 3]
"""
import argparse
import json
import os
import os.path as osp
import time

import torch

from benchmarks.measure import cpu_description, cpu_line

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG = osp.join(REPO, 'configs', 'vitpose', 'coco',
               'td-hm_vitpose-{arch}_8xb64-210e_coco-256x192.py')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--arch', default='base', choices=['small', 'base', 'large', 'huge'])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--rounds', type=int, default=3, help='alternating rounds, one step each')
    p.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'train_precision.json'))
    return p.parse_args()


def build(arch, dtype):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    from vitpose_plugin.engine import MixedPrecisionOptimWrapper
    torch.manual_seed(0)
    cfg = Config.fromfile(CFG.format(arch=arch))
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model).train()
    wrapper = MixedPrecisionOptimWrapper(
        dtype=dtype, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-5))
    return model, wrapper


def step(model, wrapper, x, target):
    """Seconds of (forward, backward, optimiser step)."""
    t0 = time.perf_counter()
    with wrapper.optim_context(model):
        loss = (model._forward(x).float() - target).square().mean()
    t1 = time.perf_counter()
    wrapper.backward(loss)
    t2 = time.perf_counter()
    wrapper.step()
    wrapper.zero_grad()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def main():
    args = parse_args()
    print(cpu_line())
    x = torch.randn(args.batch, 3, 256, 192)
    target = torch.rand(args.batch, 17, 64, 48)
    runs = {d: build(args.arch, d) for d in args.dtypes}
    for d, (model, wrapper) in runs.items():  # warm-up: allocations, optimiser state
        step(model, wrapper, x, target)
    phases = {d: [] for d in runs}
    for _ in range(args.rounds):
        for d, (model, wrapper) in runs.items():
            phases[d].append(step(model, wrapper, x, target))
    rows = []
    base = min(sum(p) for p in phases[args.dtypes[0]])
    print(f'\n| dtype | step s (best) | × {args.dtypes[0]} | spread | forward | backward '
          '| optimiser |\n|---|---|---|---|---|---|---|')
    for d, ps in phases.items():
        totals = [sum(p) for p in ps]
        best = ps[totals.index(min(totals))]
        rows.append(dict(dtype=d, step_s=min(totals), speedup=base / min(totals),
                         spread=max(totals) / min(totals), forward_s=best[0],
                         backward_s=best[1], optimizer_s=best[2], steps=ps))
        r = rows[-1]
        print(f"| {d} | {r['step_s']:.2f} | {r['speedup']:.2f} | {r['spread']:.2f} | "
              f"{best[0]:.2f} s | {best[1]:.2f} s | {best[2]:.2f} s |")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(cpu=cpu_description(), torch=torch.__version__, arch=args.arch,
                       batch=args.batch, rows=rows), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
