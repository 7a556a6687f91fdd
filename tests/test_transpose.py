"""TransPose-R: ResNet-50 to layer2 + transformer encoder with explainable attention."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpose.registry import MODELS

from conftest import CONFIGS
from vitpose_plugin.models.necks.transpose_encoder import sine_position_encoding

TP = CONFIGS / 'transpose' / 'coco'


def configs():
    return sorted(p.name for p in TP.glob('*.py'))


def test_sine_encoding_is_unique_per_position():
    pe = sine_position_encoding(64, 8, 6)
    assert pe.shape == (48, 64)
    assert torch.cdist(pe, pe).add(torch.eye(48) * 1e3).min() > 0.1


@pytest.mark.parametrize('name', configs())
def test_transpose_builds_runs_and_explains(name):
    init_default_scope('mmpose')
    cfg = Config.fromfile(str(TP / name))
    model = MODELS.build(cfg.model).eval()
    for h, w in ((256, 192), (384, 288)):
        with torch.no_grad():
            out = model._forward(torch.randn(1, 3, h, w))
        assert out.shape == (1, 17, h // 4, w // 4)
        attn = model.neck.last_attention
        tokens = (h // 8) * (w // 8)
        assert attn.shape == (1, tokens, tokens)
        assert torch.allclose(attn.sum(-1), torch.ones(1, tokens), atol=1e-4)  # softmax rows
    assert len(model.neck.layers) == int(name.split('-a')[1][0])
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert 4.5 < params < 6.5  # TransPose-R-A4 has 6.0M parameters (paper)


def test_transpose_trains_and_tests_through_the_runner(coco_dir, tmp_path):
    from test_runner import _on_shared_coco
    cfg = Config.fromfile(str(TP / 'td-hm_transpose-r-a3_8xb32-230e_coco-256x192.py'))
    cfg.model.backbone.init_cfg = None
    cfg = _on_shared_coco(cfg, coco_dir, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert 0.0 <= runner.test()['coco/AP'] <= 1.0
