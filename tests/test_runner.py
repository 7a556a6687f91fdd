"""Train and test through MMPose's runner on the shared COCO images."""
import subprocess

import pytest
from mmengine.runner import Runner

from helpers import MIM, REPO, TINY_ARCH, lifecycle, on_shared_coco, tiny_config

CONFIG = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'


def test_train_two_iterations_then_test(coco_dir, tmp_path):
    cfg = on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'train')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    scalars = (tmp_path / 'train').glob('*/vis_data/scalars.json')
    logged = ''.join(p.read_text() for p in scalars)
    assert '"loss_kpt"' in logged and '"coco/AP"' in logged
    ckpt = tmp_path / 'train' / 'epoch_1.pth'
    assert ckpt.is_file()

    # test with detected boxes from the runner checkpoint (pickled meta: weights_only)
    cfg = on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'test')
    cfg.load_from = str(ckpt)
    metrics = Runner.from_cfg(cfg).test()
    assert {'coco/AP', 'coco/AR'} <= set(metrics)
    assert 0.0 <= metrics['coco/AP'] <= 1.0


def test_mim_train_and_test_cli(coco_dir, tmp_path):
    """The user's commands: `mim train mmpose CONFIG` and `mim test mmpose CONFIG`."""
    cfg = on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'work')
    config = tmp_path / 'tiny_vitpose.py'
    cfg.dump(str(config))
    mim = MIM
    subprocess.run(mim + ['train', 'mmpose', str(config), '--work-dir', str(tmp_path / 'work')],
                   check=True, cwd=REPO, capture_output=True)
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()
    res = subprocess.run(mim + ['test', 'mmpose', str(config), '--checkpoint', str(ckpt),
                                '--work-dir', str(tmp_path / 'test')],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'coco/AP:' in res.stdout + res.stderr


@pytest.mark.parametrize('name', [CONFIG, 'td-hm_vitpose-base-simple_8xb64-210e_coco-256x192.py'])
def test_vitpose_lifecycle(name, coco_dir, tmp_path, images):
    """Trains (the loss falls), saves, reloads strictly, resumes, infers, tests."""
    cfg = tiny_config(name)
    cfg.optim_wrapper.paramwise_cfg.num_layers = TINY_ARCH['num_layers']
    lifecycle(cfg, coco_dir, tmp_path / 'work', images / 'sunglasses.jpg')
