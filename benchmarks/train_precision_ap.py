"""Does bf16 mixed-precision training reach fp32's AP? The sanity recipe, both ways.

Trains ``configs/vitpose/sanity`` (a 4-block ViTPose, 150 iterations on the shared COCO
people, flip test and CocoMetric at the end) through ``mim train`` in fp32 and in bf16
(the configs' ``CPUMixedPrecisionHook``, its dtype set through
``VITPOSE_CPU_TRAIN_DTYPE``: bf16 autocast, fp32 weights, gradients and AdamW state; the
default on CPUs with AMX), for each seed, and prints the
COCO AP of each run and the per-seed difference, with the CPU's model and instruction-set
flags; writes JSON. The two runs of a seed draw the same data order and initial weights,
so what differs is the arithmetic.

    python -m benchmarks.train_precision_ap [--seeds 0 1 2] [--data ../shared/data/coco]
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
SANITY = osp.join(REPO, 'configs', 'vitpose', 'sanity',
                  'td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py')
DTYPES = ('float32', 'bfloat16')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    shared = os.environ.get('VITPOSE_SHARED_DATA', osp.join(REPO, '..', 'shared', 'data'))
    p.add_argument('--data', default=osp.join(shared, 'coco'),
                   help='folder with test_coco.json and its images')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--dtypes', nargs='+', default=list(DTYPES), choices=DTYPES)
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'train_precision_ap.json'))
    return p.parse_args()


def last_ap(work_dir: str) -> float:
    """COCO AP of the last validation in the run's scalars.json."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d)))
    for run in reversed(runs):
        path = osp.join(work_dir, run, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            with open(path) as f:
                metrics = [json.loads(line) for line in f if 'coco/AP' in line]
            if metrics:
                return metrics[-1]['coco/AP']
    raise RuntimeError(f'no coco/AP logged under {work_dir}')


def train(seed: int, dtype: str, data: str, work_dir: str) -> float:
    data = osp.abspath(data) + '/'
    opts = [f'randomness.seed={seed}', f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}',
            f'test_dataloader.dataset.data_root={data}',
            f'val_evaluator.ann_file={data}test_coco.json',
            f'test_evaluator.ann_file={data}test_coco.json']
    cmd = [sys.executable, '-m', 'mim', 'train', 'mmpose', SANITY, '--work-dir', work_dir,
           '--cfg-options'] + opts
    env = dict(os.environ, VITPOSE_CPU_TRAIN_DTYPE=dtype)
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stderr[-3000:]}')
    return last_ap(work_dir)


def main():
    args = parse_args()
    if not osp.isfile(osp.join(args.data, 'test_coco.json')):
        raise SystemExit(f'no test_coco.json in {args.data} (pass --data or set '
                         'VITPOSE_SHARED_DATA)')
    print(cpu_line())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            row = dict(seed=seed)
            for dtype in args.dtypes:
                t0 = time.perf_counter()
                row[dtype] = train(seed, dtype, args.data, osp.join(tmp, f'{dtype}_{seed}'))
                row[f'{dtype}_minutes'] = (time.perf_counter() - t0) / 60
                print(f'seed {seed} {dtype}: AP {row[dtype]:.4f} '
                      f'({row[f"{dtype}_minutes"]:.1f} min)', flush=True)
            rows.append(row)
    print('\n| seed | ' + ' | '.join(f'AP {d}' for d in args.dtypes) +
          (' | difference |' if len(args.dtypes) == 2 else ' |'))
    print('|---' * (len(args.dtypes) + 1 + (len(args.dtypes) == 2)) + '|')
    for row in rows:
        cells = [f'{row[d]:.4f}' for d in args.dtypes]
        if len(args.dtypes) == 2:
            cells.append(f'{row[args.dtypes[1]] - row[args.dtypes[0]]:+.4f}')
        print(f"| {row['seed']} | " + ' | '.join(cells) + ' |')
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(cpu=cpu_description(), config=osp.relpath(SANITY, REPO), rows=rows),
                  f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
