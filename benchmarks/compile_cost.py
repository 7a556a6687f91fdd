"""The one-time cost of compiled inference (``set_inference_precision(model, precision,
compile=True)``): the first call at each batch size, in a fresh process with an empty
inductor cache, then in a second fresh process that finds the first one's cache.

Each measurement builds the model (random weights) in its own process, so nothing but
inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, here a new temporary folder) is
shared between the two. Prints a table with the CPU and writes JSON.

    python -m benchmarks.compile_cost [--arch base] [--precision bf16] [--batches 1 4 16]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

from benchmarks.measure import cpu_description, cpu_line

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'vitpose', 'coco',
                  'td-hm_vitpose-{arch}_8xb64-210e_coco-256x192.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--arch', default='base', choices=['small', 'base', 'large', 'huge'])
    p.add_argument('--precision', default='bf16', choices=['fp32', 'bf16'])
    p.add_argument('--batches', nargs='+', type=int, default=[1, 4, 16])
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'compile_cost.json'))
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args):
    """In a fresh process: seconds of each first call, then of a second call."""
    import torch
    from mmpose.apis import init_model

    from vitpose_plugin.deploy import fold_batchnorm, set_inference_precision
    torch.set_grad_enabled(False)
    model = init_model(CONFIG.format(arch=args.arch), None, device='cpu')
    fold_batchnorm(model)
    set_inference_precision(model, args.precision, compile=True)
    out = {}
    for batch in args.batches:
        x = torch.randn(batch, 3, 256, 192)
        t0 = time.perf_counter()
        model._forward(x)
        t1 = time.perf_counter()
        model._forward(x)
        out[batch] = dict(first_s=t1 - t0, second_s=time.perf_counter() - t1)
    print(json.dumps(out))


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    cache = tempfile.mkdtemp(prefix='vitpose_inductor_cache_')
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
    cmd = [sys.executable, '-m', 'benchmarks.compile_cost', '--child', '--arch', args.arch,
           '--precision', args.precision, '--batches'] + [str(b) for b in args.batches]
    runs = {}
    for name in ('empty cache', 'cache of the first process'):
        res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f'{name}: the measuring process failed:\n{res.stderr[-3000:]}')
        runs[name] = json.loads(res.stdout.strip().splitlines()[-1])
    print(f'{cpu_line()}\nViTPose-{args.arch}, {args.precision}, compile=True; inductor cache '
          f'{cache}\n\n| batch | first call, empty cache | first call, cached | later calls |'
          '\n|---|---|---|---|')
    for b in map(str, args.batches):
        cold, warm = runs['empty cache'][b], runs['cache of the first process'][b]
        print(f"| {b} | {cold['first_s']:.1f} s | {warm['first_s']:.1f} s | "
              f"{1e3 * min(cold['second_s'], warm['second_s']):.0f} ms |")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(cpu=cpu_description(), arch=args.arch, precision=args.precision,
                       runs=runs), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
