"""One process of a distributed test run (started by torchrun from test_distributed.py),
or the single-process reference run.

For each model family it trains a tiny, deterministic config for a few iterations
through MMEngine's runner (``Runner`` with DDP, or ``FlexibleRunner`` with
``FSDPStrategy``) on the shared data, then saves every parameter to
``OUT/<family>_<mode>_rank<r>.pth`` and the runner's checkpoints under
``OUT/<family>_<mode>/``.

CPU + gloo set-up (test-only): MMEngine's ``init_dist`` calls ``torch.cuda.set_device``,
so this script creates the gloo process group itself before the runner (which then skips
``init_dist``), and DDP gets ``device_ids=None`` and FSDP ``device_id='cpu'``.

    torchrun --nproc_per_node 2 tests/distributed_worker.py OUT ddp FAMILY [FAMILY ...]
    torchrun --nproc_per_node 2 tests/distributed_worker.py OUT fsdp vitpose --iters 3 --resume
    python tests/distributed_worker.py OUT single FAMILY [FAMILY ...]

Several runs share one launch when separated by ``+`` (each its own MODE, families and
options; all one-process or all distributed), one after the other:

    python tests/distributed_worker.py OUT single vitpose + single vitpose --iters 3
"""
import argparse
import json
import os
import sys
import uuid
from pathlib import Path

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.hooks import Hook

sys.path.insert(0, str(Path(__file__).parent))
from helpers import CONFIGS, SHARED_DATA, TINY_ARCH, on_shared_coco, tiny_config  # noqa: E402

PER_RANK = 2  # images per process; the single-process run takes 2 x PER_RANK
# gradient clipping by the norm of the whole gradient, at a norm below any step's here
# (so every step is clipped, and a norm taken over part of the gradient shows)
CLIP = 0.02
RANDOM = ('RandomFlip', 'RandomHalfBody', 'RandomBBoxTransform')
SIMPLE = 'td-hm_vitpose-base-simple_8xb64-210e_coco-256x192.py'


def _deterministic(cfg, work_dir, iters, batch, optim='sgd'):
    """Same samples in the same order, no augmentation, no dropout draws; SGD, or with
    ``optim='config'`` the config's own optimiser and parameter groups."""
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**6)
    cfg.param_scheduler = []
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # training only
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    if optim == 'sgd':
        cfg.optim_wrapper = dict(type=cfg.optim_wrapper.get('type', 'OptimWrapper'),
                                 optimizer=dict(type='SGD', lr=1e-2, momentum=0.9),
                                 clip_grad=dict(max_norm=CLIP))
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=iters, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.randomness = dict(seed=0)
    loader = cfg.train_dataloader
    loader.update(batch_size=batch, num_workers=0, persistent_workers=False,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    for ds in loader.dataset.get('datasets', [loader.dataset]):
        if 'pipeline' in ds:
            ds.pipeline = [t for t in ds.pipeline if t.get('type') not in RANDOM]
    return cfg


def vitpose(out):
    cfg = on_shared_coco(tiny_config(SIMPLE), SHARED_DATA / 'coco', out)
    cfg.model.backbone.drop_path_rate = 0.0
    return cfg


def multi_dataset(out):
    """ViTPose+ (2 experts) with a simple decoder per dataset; COCO + AIC."""
    path = CONFIGS / 'vitpose' / 'multi_dataset' / \
        'td-hm_vitpose-base_8xb64-210e_coco-aic-mpii-256x192.py'
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.update(arch=dict(TINY_ARCH), init_cfg=None, drop_path_rate=0.0,
                              num_experts=2, part_features=16)
    names = ['coco', 'aic']
    cfg.model.neck = dict(type='FeatureMapProcessor', scale_factor=4.0, apply_relu=True)
    cfg.model.heads = {n: dict(cfg.model.heads[n], in_channels=TINY_ARCH['embed_dims'],
                               deconv_out_channels=[], deconv_kernel_sizes=[],
                               final_layer=dict(kernel_size=3, padding=1)) for n in names}
    cfg.model.dataset_names = names
    sets = cfg.train_dataloader.dataset.datasets[:2]
    for ds, name, ann in zip(sets, names, ('test_coco.json', 'test_aic.json')):
        ds.update(data_root=str(SHARED_DATA / name), ann_file=ann, data_prefix=dict(img=''))
    # global order c0 a0 a1 a2 | c1 a3 a4 a5: each global batch of 4 holds both
    # datasets, rank 1's batches are AIC only (the estimator weighs each head's loss by
    # its share of the batch, so the ranks' mean is the one-process mean)
    coco, aic = sets
    cfg.train_dataloader.dataset.datasets = [
        dict(coco, indices=[0]), dict(aic, indices=[0, 1, 2]),
        dict(coco, indices=[1]), dict(aic, indices=[3, 4, 5])]
    cfg.train_dataloader.dataset.pop('indices', None)
    cfg.work_dir = str(out)
    return cfg


def _teacher(out):
    """A tiny ViTPose-B-shaped teacher checkpoint (rank 0 writes it)."""
    path = Path(out).parent / 'teacher.pth'
    if not path.exists() and int(os.environ.get('RANK', 0)) == 0:
        from mmengine.registry import init_default_scope
        from mmpose.registry import MODELS
        init_default_scope('mmpose')
        torch.manual_seed(0)
        torch.save({'state_dict': MODELS.build(tiny_config(SIMPLE).model).state_dict()}, path)
    if dist.is_initialized():
        dist.barrier()
    return str(path)


def token_stage1(out):
    """The token of a 32-wide student, which the 64-wide teacher sees through its map."""
    cfg = vitpose(out)
    cfg.model.update(type='KnowledgeTokenLearner', teacher_checkpoint=_teacher(out))
    cfg.model.backbone.knowledge_token_dims = 32
    return cfg


def token_stage2(out):
    """'tod': a frozen 32-wide token (learned for it) in a 32-wide student of a 64-wide
    teacher."""
    token = Path(out).parent / 'token.pth'
    if not token.exists() and int(os.environ.get('RANK', 0)) == 0:
        torch.manual_seed(1)
        torch.save({'knowledge_token': torch.randn(1, 1, 32)}, token)
    teacher = _teacher(out)
    cfg = vitpose(out)
    cfg.model.backbone.update(arch=dict(embed_dims=32, num_layers=2, num_heads=2),
                              knowledge_token_dims=32,
                              knowledge_token_file=str(token), freeze_knowledge_token=True)
    cfg.model.head.in_channels = 32
    cfg.model.update(type='KnowledgeTokenDistiller', mode='tod',
                     teacher=tiny_config(SIMPLE).model, teacher_checkpoint=teacher)
    return cfg


def mae(out):
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'mae' /
                              'mae_vit-base_8xb64-1600e_coco-crops-256x192.py'))
    cfg.model.backbone.arch = dict(TINY_ARCH)
    cfg.model.update(decoder_dims=32, decoder_depth=1, decoder_heads=2)
    ds = cfg.train_dataloader.dataset
    ds.update(data_root=str(SHARED_DATA / 'coco'), ann_file='test_coco.json',
              data_prefix=dict(img=''))
    cfg.work_dir = str(out)
    return cfg


def tokenpose(out):
    from helpers import tiny_hrnet
    cfg = Config.fromfile(str(CONFIGS / 'tokenpose' / 'coco' /
                              'td-hm_tokenpose-b_4xb32-300e_coco-256x192.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.norm_eval = True  # BN statistics would differ with the batch split
    channels = tiny_hrnet(cfg.model.backbone)
    cfg.model.head.update(in_channels=channels, embed_dims=32, depth=2, num_heads=2,
                          hidden_dims=64)
    return on_shared_coco(cfg, SHARED_DATA / 'coco', out)


def swin_pose(out):
    cfg = Config.fromfile(str(CONFIGS / 'swin_pose' / 'coco' /
                              'td-hm_swin-t-fusion-b_8xb32-210e_coco-256x192.py'))
    cfg.model.backbone.update(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
                              init_cfg=None, drop_path_rate=0.0)
    cfg.model.neck.in_channels = (16, 32, 64, 128)
    cfg.model.head.in_channels = 32
    cfg.optim_wrapper.pop('paramwise_cfg', None)
    return on_shared_coco(cfg, SHARED_DATA / 'coco', out)


FAMILIES = dict(vitpose=vitpose, multi_dataset=multi_dataset, token_stage1=token_stage1,
                token_stage2=token_stage2, mae=mae, tokenpose=tokenpose, swin_pose=swin_pose)


FSDP_CONFIG = CONFIGS / 'vitpose' / 'fsdp' / 'td-hm_vitpose-large-fsdp_8xb64-210e_coco-256x192.py'


def build(family, mode, out, iters=2, resume=False, optim='sgd'):
    """The family's config for ``mode``: single, ddp, fsdp (fp32 parameters) or fsdp_bf16
    (the shipped FSDP config's strategy: bf16 parameters, recomputed blocks)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    work = Path(out) / f'{family}_{mode}'
    cfg = FAMILIES[family](work)
    cfg = _deterministic(cfg, work, iters, PER_RANK if world > 1 else 2 * PER_RANK, optim)
    cfg.resume = resume
    start = Path(out) / f'{family}_single_init_rank0.pth'
    if mode != 'single' and start.is_file() and not resume:
        cfg.load_from = str(start)  # the weights the one-process run started from
    if mode == 'ddp':
        cfg.launcher = 'pytorch'
        wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
        cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)  # CPU modules
    elif mode == 'fsdp':
        cfg.launcher = 'pytorch'
        cfg.runner_type = 'FlexibleRunner'
        cfg.strategy = dict(
            type='PoseFSDPStrategy', state_dict_cfg='full',
            model_wrapper=dict(device_id='cpu', use_orig_params=True,
                               auto_wrap_policy=dict(type='vit_block_wrap_policy')))
    if mode.startswith('fsdp') and optim == 'config':
        cfg.optim_wrapper.constructor = 'ShardedLayerDecayOptimWrapperConstructor'
    if mode == 'fsdp_bf16':
        shipped = Config.fromfile(str(FSDP_CONFIG))
        cfg.launcher = 'pytorch'
        cfg.runner_type = shipped.runner_type
        cfg.strategy = shipped.strategy
        cfg.strategy.model_wrapper.device_id = 'cpu'
        cfg.model.backbone.with_cp = shipped.model.backbone.with_cp
    return cfg


def _full_state(runner):
    """Every parameter and buffer, gathered from the FSDP shards where there are any."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    model = runner.model
    if isinstance(model, FSDP):
        with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(rank0_only=False)):
            state = model.state_dict()
    else:
        state = getattr(model, 'module', model).state_dict()
    return {k: v.detach().clone() for k, v in state.items()}


def _param_groups(runner):
    """``[(lr, weight_decay, [parameter names])]`` of the optimiser, names unwrapped."""
    from vitpose_plugin.engine import unwrapped_name
    names = {id(p): unwrapped_name(n) for n, p in runner.model.named_parameters()}
    return [(g['lr'], g['weight_decay'], sorted(names[id(p)] for p in g['params']))
            for g in runner.optim_wrapper.optimizer.param_groups]


class SaveInitialState(Hook):
    """Saves the weights training starts from (after init, checkpoint and resume), and
    the optimiser's parameter groups."""

    def __init__(self, stem):
        self.stem = stem

    def before_train(self, runner):
        torch.save({'state_dict': _full_state(runner)}, f'{self.stem}.pth')  # a checkpoint
        with open(f'{self.stem}_groups.json', 'w') as f:
            json.dump(_param_groups(runner), f)


def parse_runs(argv):
    """``OUT RUN [+ RUN ...]`` -> one namespace per run (``out``, ``mode``, ``families``,
    ``iters``, ``resume``, ``optim``, ``bf16``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('out')
    parser.add_argument('mode', choices=['single', 'ddp', 'fsdp', 'fsdp_bf16'])
    parser.add_argument('families', nargs='+', choices=list(FAMILIES))
    parser.add_argument('--iters', type=int, default=2)
    parser.add_argument('--resume', action='store_true', help='continue OUT/<family>_<mode>')
    parser.add_argument('--optim', choices=['sgd', 'config'], default='sgd')
    parser.add_argument('--bf16', action='store_true',
                        help='bf16 autocast through MixedPrecisionOptimWrapper')
    runs, part = [], []
    for arg in argv[1:] + ['+']:
        if arg == '+':
            runs.append(parser.parse_args(argv[:1] + part))
            part = []
        else:
            part.append(arg)
    if len({run.mode == 'single' for run in runs}) > 1:
        parser.error('one launch runs either one-process or distributed runs, not both')
    return runs


def main():
    runs = parse_runs(sys.argv[1:])
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    import vitpose_plugin  # noqa: F401
    if runs[0].mode != 'single':
        dist.init_process_group('gloo')  # before the runner: MMEngine then skips init_dist
    rank = dist.get_rank() if dist.is_initialized() else 0
    for args in runs:
        tag = '_resumed' if args.resume else ('' if args.iters == 2 else f'_{args.iters}it')
        tag += ('' if args.optim == 'sgd' else f'_{args.optim}') + ('_bf16' if args.bf16 else '')
        for family in args.families:
            cfg = build(family, args.mode, args.out, args.iters, args.resume, args.optim)
            if args.bf16:
                cfg.optim_wrapper.type = 'MixedPrecisionOptimWrapper'
            if tag and not args.resume:
                cfg.work_dir += tag
            runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
            stem = Path(args.out) / f'{family}_{args.mode}{tag}'
            runner.register_hook(SaveInitialState(f'{stem}_init_rank{rank}'))
            runner.train()
            torch.save(_full_state(runner), f'{stem}_rank{rank}.pth')
            print(f'{family} {args.mode}{tag} rank {rank}: iter {runner.iter}', flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
