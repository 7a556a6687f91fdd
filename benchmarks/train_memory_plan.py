"""Per-device training memory of ViTPose-S/B/L/H/G under DDP and FSDP, and the largest
batch that fits an 80 GB device.

For every size at 256x192 and 576x432 and N = 1, 8, 32 devices:

* parameters, gradients and AdamW's two moments, fp32 (4 + 4 + 8 bytes per parameter):
  whole on every device with DDP, a 1/N shard with FSDP (full sharding), which also
  holds two gathered blocks at a time (the one computing and the one prefetched);
* activations per image (what autograd keeps for backward), with and without
  gradient checkpointing of every block: measured on this machine with one and two
  blocks of the size at batch 1 (the block's share, times the depth, plus the rest),
  with the fused attention kernel, fp32, then scaled by the share bf16 autocast keeps
  (measured on ViT-S). With checkpointing, backward recomputes one block at a time, so
  one block's full activations are added to what is kept;
* the largest per-device batch in 80 GB after a 3 GB allowance for the CUDA context,
  allocator fragmentation and workspaces.

It checks its per-image activation figures against a direct measurement of whole
models at batch 2 (S and B) and prints the error. Prints tables and writes JSON.

    python -m benchmarks.train_memory_plan [--devices 1 8 32] [--gpu-gb 80]
"""
import argparse
import json
import os
import os.path as osp

import torch

from benchmarks.measure import cpu_line, saved_bytes
from vitpose_plugin.models.backbones.vit import ARCHS, ViT

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZES = {'256x192': (256, 192), '576x432': (576, 432)}
LETTER = dict(small='S', base='B', large='L', huge='H', giant='G')
OVERHEAD_GB = 3.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--archs', nargs='+', default=list(LETTER), choices=list(LETTER))
    p.add_argument('--devices', nargs='+', type=int, default=[1, 8, 32])
    p.add_argument('--gpu-gb', type=float, default=80.0)
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'train_memory_plan.json'))
    return p.parse_args()


def head_params(c):
    """The classic decoder on a c-channel map (2 x deconv 4x4 256 + BN, 1x1 to 17)."""
    return c * 256 * 16 + 256 * 256 * 16 + 4 * 256 + 256 * 17 + 17


def activations(arch, hw, layers, with_cp, dtype=None, batch=1):
    """Bytes autograd saves for one training forward of a ViT of ``layers`` blocks plus
    the classic decoder, per image."""
    from mmpose.models.heads import HeatmapHead
    dims = dict(ARCHS[arch], num_layers=layers)
    vit = ViT(arch=dims, img_size=hw, with_cp=with_cp).train()
    head = HeatmapHead(dims['embed_dims'], 17, deconv_out_channels=(256, 256),
                       deconv_kernel_sizes=(4, 4)).train()
    params = list(vit.parameters()) + list(head.parameters())
    x = torch.randn(batch, 3, *hw, requires_grad=False)

    def forward(t):
        with torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
            return head(vit(t))
    return saved_bytes(forward, x, params) / batch


def per_image(arch, hw, with_cp):
    """Activation bytes per image of the whole model, from one- and two-block models:
    ``(kept for backward, peak)``; the peak adds, with checkpointing, the one block
    that backward recomputes."""
    one, two = (activations(arch, hw, n, with_cp) for n in (1, 2))
    kept = one + (ARCHS[arch]['num_layers'] - 1) * (two - one)
    if not with_cp:
        return kept, kept
    block = activations(arch, hw, 2, False) - activations(arch, hw, 1, False)
    return kept, kept + block


def plan(params, act, n, gpu_gb, block_params):
    """(static bytes, largest batch) per device for DDP (n devices) and FSDP."""
    budget = (gpu_gb - OVERHEAD_GB) * 1e9
    out = {}
    for strategy in ('ddp', 'fsdp'):
        static = 16 * params if strategy == 'ddp' else 16 * params / n + 2 * 4 * block_params
        out[strategy] = dict(static_gb=static / 1e9,
                             max_batch=max(0, int((budget - static) // act)))
    return out


def main():
    args = parse_args()
    torch.set_grad_enabled(True)
    print(f'cpu: {cpu_line()}')
    # bf16 autocast's share of the fp32 activations, measured on ViT-S (one block)
    fp32 = activations('small', (256, 192), 2, False) - activations('small', (256, 192), 1, False)
    bf16 = activations('small', (256, 192), 2, False, torch.bfloat16) - \
        activations('small', (256, 192), 1, False, torch.bfloat16)
    bf16_ratio = bf16 / fp32
    print(f'bf16 autocast keeps {bf16_ratio:.2f} of the fp32 activation bytes (ViT-S block)')

    checks = []  # the planner's per-image figure vs a whole model measured at batch 2
    for arch in ('small', 'base'):
        for cp in (False, True):
            planned = per_image(arch, (256, 192), cp)[0]
            measured = activations(arch, (256, 192), ARCHS[arch]['num_layers'], cp, batch=2)
            checks.append(dict(arch=arch, with_cp=cp, planned_mb=planned / 2**20,
                               measured_mb=measured / 2**20,
                               error=abs(planned - measured) / measured))
    print('\nplanner vs a whole model measured at batch 2 (MB per image):')
    for c in checks:
        print(f"  ViT-{LETTER[c['arch']]} with_cp={c['with_cp']!s:5s}: planned "
              f"{c['planned_mb']:8.1f}  measured {c['measured_mb']:8.1f}  "
              f"error {c['error']:.1%}")

    rows = []
    for arch in args.archs:
        a = ARCHS[arch]
        c, hidden = a['embed_dims'], int(round(a['embed_dims'] * a['mlp_ratio']))
        block = 4 * c * c + 4 * c + 2 * c * hidden + hidden + c + 4 * c
        for size, hw in SIZES.items():
            tokens = (hw[0] // 16) * (hw[1] // 16)
            params = a['num_layers'] * block + 3 * 256 * c + (tokens + 1) * c + 2 * c + \
                head_params(c)
            for cp in (False, True):
                act = per_image(arch, hw, cp)[1] * bf16_ratio
                for n in args.devices:
                    row = dict(arch=arch, input=size, with_cp=cp, devices=n,
                               params_m=params / 1e6, act_mb_per_image_bf16=act / 2**20)
                    for strategy, r in plan(params, act, n, args.gpu_gb, block).items():
                        row[f'{strategy}_static_gb'] = r['static_gb']
                        row[f'{strategy}_max_batch'] = r['max_batch']
                    rows.append(row)
    print(f'\nper device, {args.gpu_gb:.0f} GB, bf16 autocast, AdamW; static = params + grads '
          '+ AdamW (fp32); batch = largest that fits\n')
    print('| model | input | ckpt | params | act. MB/img | N | DDP static GB | DDP batch | '
          'FSDP static GB | FSDP batch |\n|' + '---|' * 10)
    for r in rows:
        print(f"| ViTPose-{LETTER[r['arch']]} | {r['input']} | {'yes' if r['with_cp'] else 'no'} "
              f"| {r['params_m']:.0f}M | {r['act_mb_per_image_bf16']:.0f} | {r['devices']} | "
              f"{r['ddp_static_gb']:.1f} | {r['ddp_max_batch']} | {r['fsdp_static_gb']:.2f} | "
              f"{r['fsdp_max_batch']} |")
    giant = [r for r in rows if r['arch'] == 'giant' and r['input'] == '576x432']
    if giant:
        best = max(giant, key=lambda r: r['fsdp_max_batch'])
        print(f"\nViTPose-G at 576x432: up to {best['fsdp_max_batch']} images per device with "
              f"FSDP on {best['devices']} devices, checkpointing "
              f"{'on' if best['with_cp'] else 'off'}")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(gpu_gb=args.gpu_gb, overhead_gb=OVERHEAD_GB, bf16_ratio=bf16_ratio,
                       checks=checks, rows=rows), f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
