"""TransPose-R (ResNet-50 to layer2) and TransPose-H (HRNet stages 1-3) + transformer
encoder with explainable attention."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

from helpers import CONFIGS, lifecycle, tiny_hrnet
from vitpose_plugin.models.utils import sine_position_encoding

TP = CONFIGS / 'transpose' / 'coco'


def configs():
    return sorted(p.name for p in TP.glob('*.py'))


def test_sine_encoding_is_unique_per_position():
    pe = sine_position_encoding(64, 8, 6)
    assert pe.shape == (48, 64)
    assert torch.cdist(pe, pe).add(torch.eye(48) * 1e3).min() > 0.1


# parameters (M) in the TransPose paper; its code stores the fixed sine encoding as a
# frozen nn.Parameter of h*w*d values, which the count includes and ours computes on the fly
PAPER_PARAMS = {'r-a3': 5.2, 'r-a4': 6.0, 'h-s': 8.0, 'h-a4': 17.3, 'h-a6': 17.5}


@pytest.mark.parametrize('name', configs())
def test_transpose_builds_runs_and_explains(name):
    init_default_scope('mmpose')
    cfg = Config.fromfile(str(TP / name))
    model = MODELS.build(cfg.model).eval()
    stride = 8 if '-r-' in name else 4  # ResNet layer2: 1/8; HRNet's first branch: 1/4
    for h, w in ((256, 192), (384, 288)):
        with torch.no_grad():
            out = model._forward(torch.randn(1, 3, h, w))
        assert out.shape == (1, 17, h // 4, w // 4)
        attn = model.neck.last_attention
        tokens = (h // stride) * (w // stride)
        assert attn.shape == (1, tokens, tokens)
        assert torch.allclose(attn.sum(-1), torch.ones(1, tokens), atol=1e-4)  # softmax rows
    variant = name.split('transpose-')[1].split('_')[0]
    assert len(model.neck.layers) == (4 if variant == 'h-s' else int(variant[-1]))
    params = sum(p.numel() for p in model.parameters())
    frozen_sine = (256 // stride) * (192 // stride) * model.neck.embed_dims
    paper = PAPER_PARAMS[variant]
    assert abs((params + frozen_sine) / 1e6 - paper) / paper < 0.01


@pytest.mark.parametrize('name', ['td-hm_transpose-r-a3_8xb32-230e_coco-256x192.py',
                                  'td-hm_transpose-h-s_8xb32-230e_coco-256x192.py'])
def test_transpose_lifecycle(name, coco_dir, tmp_path, images):
    """Trains (the loss falls), saves, reloads strictly, resumes, infers, tests."""
    cfg = Config.fromfile(str(TP / name))
    cfg.model.backbone.init_cfg = None
    if 'extra' in cfg.model.backbone:  # HRNet
        cfg.model.neck.in_channels = tiny_hrnet(cfg.model.backbone)
    cfg.model.neck.update(embed_dims=32, ffn_dims=64)
    cfg.model.head.in_channels = 32
    cfg.model.test_cfg.flip_test = False  # 1/4-resolution attention: keep the CPU test short
    lifecycle(cfg, coco_dir, tmp_path / 'work', images / 'sunglasses.jpg')
