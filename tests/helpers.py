"""Helpers the test modules share (fixtures live in conftest.py)."""
import atexit
import contextlib
import copy
import functools
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'
SHARED_DATA = Path(os.environ.get('VITPOSE_SHARED_DATA', REPO.parent / 'shared' / 'data'))
DEMO = str(REPO / 'demo' / 'topdown_demo.py')
MIM = [sys.executable, '-m', 'mim']
TINY_ARCH = dict(embed_dims=64, num_layers=2, num_heads=4)


def vitpose_configs():
    return sorted(p.name for p in (CONFIGS / 'vitpose' / 'coco').glob('td-hm_vitpose-*.py'))


def tiny_config(name, arch=TINY_ARCH, deconv=(32, 32)):
    """A shipped ViTPose COCO config with a tiny backbone/decoder and no download."""
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'coco' / name))
    cfg.model.backbone.arch = dict(arch)
    cfg.model.backbone.init_cfg = None
    cfg.model.head.in_channels = arch['embed_dims']
    if cfg.model.head.deconv_out_channels:
        cfg.model.head.deconv_out_channels = deconv
    return cfg


@functools.lru_cache()
def installed_package() -> Path:
    """This checkout built as a wheel and installed (not editable) into a temporary
    folder, once per test session: put it first on PYTHONPATH to run as an installed
    package."""
    tmp = Path(tempfile.mkdtemp(prefix='vitpose_plugin_installed_'))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    # built from a copy: the build leaves build/ and egg-info folders where it runs
    src, target = tmp / 'src', tmp / 'site-packages'
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'build', 'work_dirs', 'outputs', '*.egg-info', '__pycache__'))
    res = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                          '--no-build-isolation', '--target', str(target), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return target


def load_script(script):
    """The module of a script of the repository (``script`` relative to it, e.g.
    ``tools/make_metainfo.py``), imported from its file."""
    spec = importlib.util.spec_from_file_location(Path(script).stem, REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(script, *args):
    """``python SCRIPT ARGS`` (``script`` relative to the repository, e.g.
    ``tools/convert_checkpoint.py``) in this process through the script's ``main(argv)``;
    returns what it printed. A refusal raises the script's ``SystemExit`` (its message is
    what the command line prints before exiting with status 1)."""
    module = load_script(script)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main([str(a) for a in args])
    return out.getvalue()


# ---------------------------------------------------------------- the runner
def on_shared_coco(cfg, coco_dir, work_dir, batch_size=6):
    """``cfg`` made to train / validate / test on the shared COCO images for one epoch
    (12 annotated people: 2 iterations at batch 6), writing into ``work_dir``."""
    cfg.work_dir = str(work_dir)
    # MMEngine reuses a visualizer of the same name built earlier in the process (by
    # another runner or MMPoseInferencer), which would log into that run's folder
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = [dict(type='LinearLR', begin=0, end=2, start_factor=0.1,
                                by_epoch=False)]
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=512)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    for loader, bbox_file in ((cfg.train_dataloader, None), (cfg.val_dataloader, None),
                              (cfg.test_dataloader, 'test_coco_det_AP_H_56.json')):
        loader.batch_size = batch_size
        loader.num_workers = 0
        loader.persistent_workers = False
        ds = loader.dataset
        ds.data_root = str(coco_dir)
        ds.ann_file = 'test_coco.json'
        ds.data_prefix = dict(img='')
        ds.bbox_file = str(coco_dir / bbox_file) if bbox_file else None
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key] = dict(type='CocoMetric', ann_file=str(coco_dir / 'test_coco.json'))
    return cfg


def fixed_batch_loss(model, batch):
    """The summed training losses on ``batch``, with fixed dropout / drop-path draws."""
    torch.manual_seed(1234)
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        losses = model(**data, mode='loss')
    return sum(v for k, v in losses.items() if k.startswith('loss')).item()


def tiny_hrnet(backbone_cfg):
    """Shrink an HRNet / TruncatedHRNet config in place (one module, one block per branch,
    8/16/32 channels); returns the channels of its 1/4 branch after the last stage."""
    extra = backbone_cfg.extra
    extra.stage1.update(num_blocks=(1, ), num_channels=(16, ))
    for i, n in ((2, 2), (3, 3), (4, 4)):
        extra[f'stage{i}'].update(num_modules=1, num_blocks=(1, ) * n,
                                  num_channels=tuple(8 * 2**j for j in range(n)))
    return 64 if backbone_cfg.get('num_stages', 4) == 1 else 8


def lifecycle(cfg, coco_dir, work_dir, image, iters=3, lr=3e-4, people=2):
    """What every shipped config must do, through MMEngine's runner: build, train
    ``iters`` steps on the first ``people`` people (the loss on them goes down), save,
    reload its own checkpoint strictly into a fresh model (same heatmaps), resume for one
    more step, run ``inference_topdown`` on ``image`` and a test on a few detections.
    Returns the test metrics."""
    from mmpose.apis import inference_topdown, init_model
    if coco_dir is not None:  # else the caller pointed the datasets at the shared data
        cfg = on_shared_coco(cfg, coco_dir, work_dir)
    # every step sees the same people (of each dataset), unaugmented: the loss must fall
    sets = cfg.train_dataloader.dataset.get('datasets', [cfg.train_dataloader.dataset])
    random = ('RandomFlip', 'RandomHalfBody', 'RandomBBoxTransform')
    for ds in sets:
        ds.indices = people
        ds.pipeline = [t for t in ds.pipeline if t.type not in random]
    cfg.train_dataloader.batch_size = people * len(sets)
    cfg.test_dataloader.dataset.indices = 2 * people  # testing runs; AP is not the point
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**6)
    # constant lr; the scheduler's state (a Counter) goes into the checkpoint
    cfg.param_scheduler = [dict(type='MultiStepLR', milestones=[10**6], by_epoch=False)]
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=iters, by_epoch=False)
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    batch = next(iter(runner.train_dataloader))
    runner.model.init_weights()
    runner.model.train()
    before = fixed_batch_loss(runner.model, batch)
    runner.train()
    after = fixed_batch_loss(runner.model, batch)
    assert after < before, f'no learning signal: loss {before:.5f} -> {after:.5f}'
    ckpt = Path(work_dir) / f'iter_{iters}.pth'

    # the checkpoint reloads strictly into a fresh model built from the same config
    cfg_file = Path(work_dir) / 'lifecycle_cfg.py'
    cfg.dump(str(cfg_file))
    fresh = init_model(str(cfg_file), str(ckpt), device='cpu')
    trained = runner.model.eval()
    x = torch.randn(2, 3, *cfg.codec.input_size[::-1])
    with torch.no_grad():
        assert torch.equal(fresh._forward(x), trained._forward(x))

    # --resume continues from the saved iteration
    resumed = copy.deepcopy(cfg)
    resumed.train_cfg.max_iters = iters + 1
    resumed.resume = True
    resumed.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    runner = Runner.from_cfg(resumed)
    runner.train()
    assert runner.iter == iters + 1

    # inference on a real image, and a test run through the runner
    results = inference_topdown(fresh, str(image), np.array([[20, 10, 200, 250]], np.float32))
    keypoints = results[0].pred_instances.keypoints
    assert keypoints.shape[0] == 1 and np.isfinite(keypoints).all()
    return runner.test()


def train_two_iterations_and_test(cfg, coco_dir, work_dir):
    """Train ``cfg`` for 2 iterations and test it on the shared COCO images through
    MMEngine's runner; returns the test metrics."""
    runner = Runner.from_cfg(on_shared_coco(cfg, coco_dir, work_dir))
    runner.train()
    assert runner.iter == 2
    return runner.test()


def shared_coco_options(coco_dir):
    """``--cfg-options`` that point a config's loaders and metrics at the shared COCO."""
    opts = [f'{s}_dataloader.dataset.data_root={coco_dir}' for s in ('train', 'val', 'test')]
    return opts + [f'{s}_evaluator.ann_file={coco_dir}/test_coco.json' for s in ('val', 'test')]


def last_metrics(work_dir):
    """The last evaluation a run logged (MMEngine's json logs of train and test)."""
    records = []
    for path in sorted(Path(work_dir).rglob('*.json'), key=lambda p: p.stat().st_mtime):
        records += [json.loads(line) for line in path.read_text().splitlines()
                    if line.startswith('{') and '"coco/AP"' in line]
    assert records, f'no coco/AP logged under {work_dir}'
    return records[-1]


def mim_train(config, work_dir, coco_dir, *opts):
    """``mim train mmpose CONFIG`` on the shared COCO; returns the last COCO AP."""
    subprocess.run(MIM + ['train', 'mmpose', str(config), '--work-dir', str(work_dir),
                          '--cfg-options'] + shared_coco_options(coco_dir) + list(opts),
                   check=True, cwd=REPO, capture_output=True)
    return last_metrics(work_dir)['coco/AP']


def resume_after_sigkill_matches(config, coco_dir, tmp_path, kill_at, last):
    """``mim train CONFIG`` uninterrupted, and again killed with SIGKILL once
    ``iter_{kill_at}.pth`` is written and restarted with ``--resume``: both runs end with
    bit-identical weights (``iter_{last}.pth``) and metrics. ``config`` checkpoints by
    iteration and is deterministic (``randomness=dict(seed=..., deterministic=True)``)."""
    opts = ['--cfg-options'] + shared_coco_options(coco_dir)
    full, broken = Path(tmp_path) / 'full', Path(tmp_path) / 'broken'
    subprocess.run(MIM + ['train', 'mmpose', str(config), '--work-dir', str(full)] + opts,
                   check=True, cwd=REPO, capture_output=True)
    proc = subprocess.Popen(MIM + ['train', 'mmpose', str(config), '--work-dir', str(broken)]
                            + opts, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    marker = broken / 'last_checkpoint'
    while not (marker.is_file() and marker.read_text().strip().endswith(f'iter_{kill_at}.pth')):
        assert proc.poll() is None and time.time() < deadline, f'run ended before iter {kill_at}'
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # mim starts train.py as a child process
    proc.wait()
    assert not (broken / f'iter_{last}.pth').exists(), 'the run finished before it was killed'
    res = subprocess.run(MIM + ['train', 'mmpose', str(config), '--work-dir', str(broken),
                                '--resume'] + opts, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    resumed = re.search(r'resumed epoch: \d+, iter: (\d+)', res.stdout + res.stderr)
    assert resumed and int(resumed.group(1)) >= kill_at, 'the second run did not resume'
    from mmengine.runner.checkpoint import _load_checkpoint
    a = _load_checkpoint(str(full / f'iter_{last}.pth'))['state_dict']
    b = _load_checkpoint(str(broken / f'iter_{last}.pth'))['state_dict']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma, mb = last_metrics(full), last_metrics(broken)
    assert {k: v for k, v in ma.items() if k.startswith('coco/')} == \
        {k: v for k, v in mb.items() if k.startswith('coco/')}


# ------------------------------------------------------------------ the demo
def uncompiled(args):
    """Demo arguments with ``--compile off`` added unless they hold ``--compile``."""
    return args if '--compile' in args else args + ['--compile', 'off']


def run_demo(args, check=True, in_process=True):
    """``python demo/topdown_demo.py ARGS``: what it prints (stdout; stderr with the log)
    and its exit status, as a ``CompletedProcess``. In this process through the demo's
    ``main(argv)`` (a refusal's ``SystemExit`` message goes to stderr with status 1, as
    Python prints it), or as its own process with ``in_process=False`` (the tests whose
    point is the command line itself). ``--compile off`` unless ``args`` choose: 'auto'
    compiles videos on AMX CPUs only, for tens of seconds; the compile tests force it."""
    args = uncompiled([str(a) for a in args])
    if not in_process:
        res = subprocess.run([sys.executable, DEMO] + args, capture_output=True, text=True,
                             cwd=REPO)
    else:
        from mmengine.logging import MMLogger
        demo = load_script(Path(DEMO).relative_to(REPO))
        out, err, code = io.StringIO(), io.StringIO(), 0
        log = logging.StreamHandler(err)
        logger = MMLogger.get_current_instance()
        logger.addHandler(log)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                demo.main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if isinstance(e.code, str):
                err.write(e.code + '\n')
        except Exception:  # an uncaught error: Python prints the traceback, status 1
            code = 1
            err.write(traceback.format_exc())
        finally:
            logger.removeHandler(log)
        res = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check:
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res


def check_persons(persons, names):
    for p in persons:
        assert {'bbox', 'bbox_score', 'keypoints', 'keypoint_scores'} <= set(p)
        assert len(p['bbox']) == 4 and 0.3 < p['bbox_score'] <= 1.0
        assert len(p['keypoints']) == len(names) == 17
        assert len(p['keypoint_scores']) == 17
        assert np.isfinite(p['keypoints']).all() and np.isfinite(p['keypoint_scores']).all()
