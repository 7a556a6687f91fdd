"""Training step time and peak memory with and without gradient checkpointing.

For ViTPose (default B, batch 32, 256x192, classic decoder) this runs training steps
(forward, MSE loss, backward, AdamW step) with gradient checkpointing of none, all, and
the first 3/4 of the blocks (``ViT(with_cp=k)``; choose others with --cp-layers), each
in a fresh process so that one mode's allocations cannot hide another's, and reports:

* step time (median of the timed steps after one warm-up step);
* activation memory: bytes autograd saves for backward in one forward (what gradient
  checkpointing trades for recomputation), parameters excluded;
* peak memory of the step: on CPU the growth of the process's peak RSS during the
  timed steps over its RSS before them (weights, gradients and AdamW state are
  allocated by the warm-up step, so this is the step's own working memory); on a GPU
  torch.cuda.max_memory_allocated.

The issue's goal: checkpointing uses <= 50% of the memory for <= 35% more time.
Prints a table and writes JSON.

    python -m benchmarks.train_memory [--arch base] [--batch 32] [--steps 3]
                                      [--cp-layers 0 12 9] [--device cpu]
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

import torch

from benchmarks.measure import cpu_description, cpu_line, saved_bytes
from vitpose_plugin.models.backbones.vit import ARCHS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG = osp.join(REPO, 'configs', 'vitpose', 'coco',
               'td-hm_vitpose-{arch}_8xb64-210e_coco-256x192.py')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--arch', default='base', choices=['small', 'base', 'large', 'huge'])
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--steps', type=int, default=3, help='timed steps after one warm-up')
    p.add_argument('--device', default='cpu')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'train_memory.json'))
    p.add_argument('--cp-layers', nargs='+', type=int,
                   help='checkpointed blocks per run (default: 0, all, 3/4 of them)')
    p.add_argument('--mode', type=int, help=argparse.SUPPRESS)  # internal: one run
    return p.parse_args()


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def measure(args):
    """One mode, in this process; prints one JSON line."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    import vitpose_plugin  # noqa: F401
    torch.manual_seed(0)
    cfg = Config.fromfile(CFG.format(arch=args.arch))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.with_cp = args.mode
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 3, 256, 192, device=args.device)
    target = torch.rand(args.batch, 17, 64, 48, device=args.device)
    cuda = args.device.startswith('cuda')

    def step():
        loss = (model._forward(x) - target).square().mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()

    step()  # allocates gradients and AdamW state
    # per image, no backward
    saved = saved_bytes(lambda t: model._forward(t).sum(), x[:1], model.parameters())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    before = rss_mb()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    peak = ((torch.cuda.max_memory_allocated() - base) / 2**20 if cuda
            else peak_rss - before)
    times.sort()
    print(json.dumps(dict(with_cp=args.mode, step_s=times[len(times) // 2],
                          saved_mb_per_img=saved / 2**20, step_peak_mb=peak,
                          process_peak_mb=peak_rss)))


def main():
    args = parse_args()
    if args.mode is not None:
        return measure(args)
    layers = ARCHS[args.arch]['num_layers']
    print(f'{args.device}: {cpu_line()}')
    rows = {}
    for mode in args.cp_layers or (0, layers, 3 * layers // 4):
        cmd = [sys.executable, '-m', 'benchmarks.train_memory', '--mode', str(mode), '--arch',
               args.arch, '--batch', str(args.batch), '--steps', str(args.steps), '--device',
               args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if out.returncode:
            raise SystemExit(f'{mode} run failed:\n{out.stderr[-3000:]}')
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        r = rows[mode]
        print(f"with_cp={mode:<3d} step {r['step_s']:7.2f} s  activations "
              f"{r['saved_mb_per_img']:7.1f} MB/img  step peak {r['step_peak_mb']:8.0f} MB  "
              f"process peak {r['process_peak_mb']:8.0f} MB", flush=True)
    if 0 not in rows:
        raise SystemExit('--cp-layers must include 0 (the plain run the others are compared to)')
    p = rows[0]
    ratios = {}
    print(f'\nViTPose-{args.arch}, batch {args.batch}, {args.device}, relative to no '
          'checkpointing (goal: <= 1.35x time for <= 0.50x memory):')
    for mode, c in rows.items():
        if mode == 0:
            continue
        ratios[mode] = r = dict(time=c['step_s'] / p['step_s'],
                                activations=c['saved_mb_per_img'] / p['saved_mb_per_img'],
                                step_peak=c['step_peak_mb'] / p['step_peak_mb'])
        print(f"  with_cp={mode:<3d} {r['time']:.2f}x time, {r['activations']:.2f}x activation "
              f"memory, {r['step_peak']:.2f}x the step's peak memory")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(arch=args.arch, batch=args.batch, device=args.device, cpu=cpu_description(),
                       threads=torch.get_num_threads(), torch=torch.__version__, rows=rows,
                       ratios=ratios), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
