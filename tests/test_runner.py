"""Train and test through MMPose's runner on the shared COCO images."""
import subprocess
import uuid
import sys

from mmengine.runner import Runner

from conftest import REPO, tiny_config

CONFIG = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'


def _on_shared_coco(cfg, coco_dir, work_dir):
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
        loader.batch_size = 6  # 12 annotated people -> 2 iterations per epoch
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


def train_two_iterations_and_test(cfg, coco_dir, work_dir):
    """Train ``cfg`` for 2 iterations and test it on the shared COCO images through
    MMEngine's runner; returns the test metrics."""
    runner = Runner.from_cfg(_on_shared_coco(cfg, coco_dir, work_dir))
    runner.train()
    assert runner.iter == 2
    metrics = runner.test()
    assert 0.0 <= metrics['coco/AP'] <= 1.0
    return metrics


def test_train_two_iterations_then_test(coco_dir, tmp_path):
    cfg = _on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'train')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    scalars = (tmp_path / 'train').glob('*/vis_data/scalars.json')
    logged = ''.join(p.read_text() for p in scalars)
    assert '"loss_kpt"' in logged and '"coco/AP"' in logged
    ckpt = tmp_path / 'train' / 'epoch_1.pth'
    assert ckpt.is_file()

    # test with detected boxes from the runner checkpoint (pickled meta: weights_only)
    cfg = _on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'test')
    cfg.load_from = str(ckpt)
    metrics = Runner.from_cfg(cfg).test()
    assert {'coco/AP', 'coco/AR'} <= set(metrics)
    assert 0.0 <= metrics['coco/AP'] <= 1.0


def test_mim_train_and_test_cli(coco_dir, tmp_path):
    """The user's commands: `mim train mmpose CONFIG` and `mim test mmpose CONFIG`."""
    cfg = _on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'work')
    config = tmp_path / 'tiny_vitpose.py'
    cfg.dump(str(config))
    mim = [sys.executable, '-m', 'mim']
    subprocess.run(mim + ['train', 'mmpose', str(config), '--work-dir', str(tmp_path / 'work')],
                   check=True, cwd=REPO, capture_output=True)
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()
    res = subprocess.run(mim + ['test', 'mmpose', str(config), '--checkpoint', str(ckpt),
                                '--work-dir', str(tmp_path / 'test')],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'coco/AP:' in res.stdout + res.stderr
