"""Training in more than one process through MMEngine's runners (gloo on the CPU).

Every family trains 2 iterations with DDP on 2 processes and, from the same weights on
the same 4 samples, in one process; the ViT also trains with FSDP (MMEngine's
``FlexibleRunner``), in fp32 and with the shipped FSDP config's bf16 strategy, and every
family takes a bf16 autocast step. ``tests/distributed_worker.py`` is one process of
these runs and says how the CPU set-up differs from a GPU one.

Tolerances: the runs use SGD with gradient clipping by the global norm, so a
parameter's difference from the one-process run is lr x (gradient difference) plus the
rounding of the parameter itself. Averaging two half-batch gradients instead of taking
one full-batch mean changes the fp32 summation order only (~1e-7 relative), so runs must
agree to 1e-3 of the largest update the reference made, plus 4 fp32 ulps of the value
(2^-21 relative); a rank's samples missing or counted twice, or a norm taken over one
rank's shard, changes updates by tens of percent. bf16 keeps 8 bits of mantissa (2^-9
relative rounding per operation), so bf16 updates point along the fp32 ones
(cosine > 0.99) without equalling them.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from helpers import CONFIGS, REPO, SHARED_DATA

WORKER = str(REPO / 'tests' / 'distributed_worker.py')
FAMILIES = ['vitpose', 'multi_dataset', 'token_stage1', 'token_stage2', 'mae', 'tokenpose',
            'swin_pose']
FSDP_FAMILIES = ['vitpose', 'multi_dataset']  # the ViT families FSDP shards block by block


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(out, mode, *args, script=WORKER, check=True):
    cmd = [sys.executable, script, str(out), mode, *args]
    if mode != 'single':
        cmd[1:2] = ['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr',
                    '127.0.0.1', '--master_port', str(_free_port()), script]
    env = dict(os.environ, VITPOSE_SHARED_DATA=str(SHARED_DATA), OMP_NUM_THREADS='1')
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    if check:
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


def load(out, name):
    state = torch.load(out / f'{name}.pth')
    return state.get('state_dict', state)


def update(out, run):
    """The change training made to each floating-point tensor of ``run``."""
    start, end = load(out, f'{run}_init_rank0'), load(out, f'{run}_rank0')
    return {k: end[k] - start[k] for k in end if end[k].is_floating_point()}


def assert_same_training(out, run, reference, same_start=True):
    """``run`` ended where ``reference`` did, to 1e-3 of the largest update + 4 ulps."""
    a, b = load(out, f'{run}_rank0'), load(out, f'{reference}_rank0')
    assert a.keys() == b.keys()
    if same_start:
        init_a, init_b = load(out, f'{run}_init_rank0'), load(out, f'{reference}_init_rank0')
        for k in init_a:
            assert torch.equal(init_a[k], init_b[k]), f'{run} started elsewhere: {k}'
    scale = max(v.abs().max() for v in update(out, reference).values())
    assert scale > 0  # training changed the weights, so the comparison means something
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=2**-21, atol=1e-3 * float(scale),
                                       msg=k)


def assert_bf16_follows_fp32(out, run, reference):
    moved = {k: v for k, v in update(out, reference).items() if v.abs().max() > 0}
    got = update(out, run)
    a = torch.cat([got[k].flatten() for k in moved])
    b = torch.cat([moved[k].flatten() for k in moved])
    assert torch.isfinite(a).all()
    assert not torch.equal(a, b)  # the bf16 kernels ran
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.99
    assert 0.9 < a.norm() / b.norm() < 1.1
    assert all(v.dtype != torch.bfloat16 for v in load(out, f'{run}_rank0').values())


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    if not (SHARED_DATA / 'aic' / 'test_aic.json').is_file():
        pytest.skip(f'shared data not found under {SHARED_DATA}')
    out = tmp_path_factory.mktemp('dist')
    # first: the others start from its weights. The same launch runs the one-process
    # references of the FSDP-resume, layer-decay and bf16 tests, one after the other.
    launch(out, 'single', *FAMILIES, '+', 'single', 'vitpose', '--iters', '3',
           '+', 'single', 'vitpose', '--optim', 'config', '+', 'single', *FAMILIES, '--bf16')
    launch(out, 'ddp', *FAMILIES)
    return out


@pytest.fixture(scope='module')
def fsdp_runs(runs):
    """Every FSDP run in one launch: fp32, the config's optimiser and the shipped bf16
    strategy from the one-process run's weights, then fp32 resumed for a 3rd iteration.
    Returns the folder and the launch's output."""
    res = launch(runs, 'fsdp', *FSDP_FAMILIES, '+', 'fsdp', 'vitpose', '--optim', 'config',
                 '+', 'fsdp_bf16', 'vitpose', '+', 'fsdp', 'vitpose', '--iters', '3',
                 '--resume')
    return runs, res.stdout


# ------------------------------------------------------------------------- DDP
@pytest.mark.parametrize('family', FAMILIES)
def test_ddp_ranks_hold_identical_parameters(runs, family):
    a, b = load(runs, f'{family}_ddp_rank0'), load(runs, f'{family}_ddp_rank1')
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize('family', [f for f in FAMILIES if f != 'mae'])
def test_ddp_step_equals_one_process_on_the_global_batch(runs, family):
    """2 processes x 2 images == 1 process x 4 images. MAE is left out: each process
    draws its own masks."""
    assert_same_training(runs, f'{family}_ddp', f'{family}_single')


def test_ddp_trains_a_head_that_one_rank_never_sees(runs):
    """Rank 1's batches are AIC only: the COCO head learns from rank 0 alone, by as
    much as in one process."""
    step, one = update(runs, 'multi_dataset_ddp'), update(runs, 'multi_dataset_single')
    for head in ('aic', 'coco'):
        k = f'heads.{head}.final_layer.weight'
        assert step[k].abs().max() > 0.1 * max(v.abs().max() for v in one.values())
        assert (step[k] - one[k]).abs().max() <= 1e-3 * one[k].abs().max()


@pytest.mark.parametrize('family', FAMILIES)
def test_ddp_checkpoint_loads_strictly_into_one_process(runs, family):
    import distributed_worker as worker  # tests/ is on the path, as for helpers
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import _load_checkpoint
    from mmpose.registry import MODELS
    cfg = worker.FAMILIES[family](runs / 'reload')
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    state = _load_checkpoint(str(runs / f'{family}_ddp' / 'iter_2.pth'))['state_dict']
    model.load_state_dict(state, strict=True)
    trained = load(runs, f'{family}_ddp_rank0')
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained[k]), k


def test_find_unused_parameters_exactly_where_a_batch_can_skip_parameters():
    """Per-dataset heads and experts may get no sample on a rank; nothing else can."""
    for path in sorted(CONFIGS.rglob('*.py')):
        cfg = Config.fromfile(str(path))
        flag = (cfg.get('model_wrapper_cfg') or {}).get('find_unused_parameters', False)
        multi = cfg.model.get('type') == 'MultiHeadTopdownPoseEstimator'
        assert flag == multi, path


def test_without_find_unused_parameters_a_skipped_head_breaks_ddp(runs, tmp_path):
    """What the flag prevents: with COCO only in both ranks' first batches (4 COCO
    samples first) the AIC head gets no gradient and DDP stops at the next step, naming
    the flag."""
    script = tmp_path / 'no_flag.py'
    script.write_text(
        f'import sys; sys.path.insert(0, {str(REPO / "tests")!r})\n'
        'import distributed_worker as w\n'
        'old = w.multi_dataset\n'
        'def no_flag(out):\n'
        '    cfg = old(out)\n'
        '    cfg.model_wrapper_cfg.find_unused_parameters = False\n'
        '    coco, aic = cfg.train_dataloader.dataset.datasets[:2]\n'
        '    cfg.train_dataloader.dataset.datasets = [dict(coco, indices=4), aic]\n'
        '    return cfg\n'
        'w.FAMILIES["multi_dataset"] = no_flag\n'
        'w.main()\n')
    res = launch(tmp_path, 'ddp', 'multi_dataset', script=str(script), check=False)
    assert res.returncode != 0
    assert 'find_unused_parameters' in res.stdout + res.stderr


# ------------------------------------------------------------------------ FSDP
def test_fsdp_step_equals_ddp_and_saves_a_full_state_dict(fsdp_runs):
    runs, _ = fsdp_runs
    import distributed_worker as worker  # tests/ is on the path, as for helpers
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import _load_checkpoint
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    for family in FSDP_FAMILIES:
        assert_same_training(runs, f'{family}_fsdp', f'{family}_ddp')
        a, b = load(runs, f'{family}_fsdp_rank0'), load(runs, f'{family}_fsdp_rank1')
        assert all(torch.equal(a[k], b[k]) for k in a)  # each rank gathers the same
        # the checkpoint is a full state dict that loads strictly into the plain model
        model = MODELS.build(worker.FAMILIES[family](runs / 'reload').model)
        ckpt = _load_checkpoint(str(runs / f'{family}_fsdp' / 'iter_2.pth'))
        model.load_state_dict(ckpt['state_dict'], strict=True)
        for k, v in model.state_dict().items():
            assert torch.equal(v, load(runs, f'{family}_fsdp_rank0')[k]), k


def test_fsdp_resume_continues_exactly(fsdp_runs):
    """2 FSDP iterations + --resume for a 3rd == 3 iterations in one process: weights,
    momentum and the data position all come back."""
    runs, stdout = fsdp_runs
    assert 'vitpose fsdp_resumed rank 0: iter 3' in stdout
    assert_same_training(runs, 'vitpose_fsdp_resumed', 'vitpose_single_3it', same_start=False)


def test_fsdp_keeps_the_lr_decay_and_weight_decay_groups(fsdp_runs):
    """The config's AdamW + layer decay: the same parameter groups (lr, weight decay,
    members) in one process and under FSDP's flat shards."""
    runs, _ = fsdp_runs
    one = json.loads((runs / 'vitpose_single_config_init_rank0_groups.json').read_text())
    for rank in (0, 1):
        fsdp = json.loads((runs / f'vitpose_fsdp_config_init_rank{rank}_groups.json')
                          .read_text())
        assert sorted(map(json.dumps, fsdp)) == sorted(map(json.dumps, one))
    lrs = {lr for lr, _, _ in one}
    assert len(lrs) >= 3  # patch embedding, two blocks, the head: decayed lrs
    assert {wd for _, wd, _ in one} == {0.0, 0.1}


def test_fsdp_with_the_shipped_bf16_strategy(fsdp_runs):
    """The FSDP config's strategy (bf16 parameters, fp32 gradient reduction, recomputed
    blocks): fp32 master weights, updates along the fp32 ones."""
    runs, _ = fsdp_runs
    assert_bf16_follows_fp32(runs, 'vitpose_fsdp_bf16', 'vitpose_ddp')


# ------------------------------------------------------------------------ bf16
def test_bf16_autocast_step_every_family(runs):
    """MixedPrecisionOptimWrapper (what ``--amp`` is on a GPU) on the CPU."""
    for family in FAMILIES:
        assert_bf16_follows_fp32(runs, f'{family}_single_bf16', f'{family}_single')


# ------------------------------------------------------------ wrapped modules
def test_strict_loading_sees_through_wrapper_modules():
    """Inside FSDP or activation-checkpoint wrappers the strict check compares the
    unwrapped names (without collectives) and still names a missing key."""
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    from helpers import tiny_config
    from vitpose_plugin.models.pose_estimators.strict_topdown import CheckpointMismatchError
    init_default_scope('mmpose')
    model = MODELS.build(tiny_config('td-hm_vitpose-base-simple_8xb64-210e_coco-256x192.py')
                         .model)
    model.backbone.layers[0] = checkpoint_wrapper(model.backbone.layers[0])
    state = model.state_dict()
    assert 'backbone.layers.0.attn.qkv.weight' in state
    model.load_state_dict(state, strict=True)
    del state['backbone.layers.0.attn.qkv.weight']
    with pytest.raises(CheckpointMismatchError, match=r'backbone\.layers\.0\.attn\.qkv\.weight'):
        model.load_state_dict(state, strict=True)
