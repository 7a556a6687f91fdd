"""Swin-Pose: MMPose's Swin Transformer + the plugin's feature pyramid fusion neck."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

from helpers import CONFIGS, lifecycle
from vitpose_plugin.models.necks import PyramidFusionNeck

SWIN = CONFIGS / 'swin_pose' / 'coco'
TINY_SWIN = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], init_cfg=None,
                 drop_path_rate=0.0)


def pyramid(b=2, c=16, h=64, w=48):
    return tuple(torch.randn(b, c * 2**i, h // 2**i, w // 2**i) for i in range(4))


@pytest.mark.parametrize('fusion,channels', [('sum', 16), ('concat', 32)])
def test_fused_map_width_and_resolution(fusion, channels):
    neck = PyramidFusionNeck((16, 32, 64, 128), fusion=fusion)
    out, = neck(pyramid())
    assert neck.out_channels == channels and out.shape == (2, channels, 64, 48)


def test_sum_fusion_is_the_top_down_pathway():
    torch.manual_seed(0)
    neck = PyramidFusionNeck((16, 32, 64, 128), fusion='sum')
    feats = pyramid()
    x = feats[3]
    for lateral, finer in zip(neck.laterals, (feats[2], feats[1], feats[0])):
        x = finer + F.interpolate(lateral(x), size=finer.shape[-2:], mode='bilinear')
    assert torch.allclose(neck(feats)[0], x, atol=1e-6)
    # method B keeps each stage's own map untouched in its first channels
    concat = PyramidFusionNeck((16, 32, 64, 128), fusion='concat')
    assert torch.equal(concat(feats)[0][:, :16], feats[0])


def test_wrong_number_of_stages_is_explained():
    with pytest.raises(ValueError, match='out_indices'):
        PyramidFusionNeck((16, 32, 64, 128))(pyramid()[:1])


def swin_configs():
    return sorted(p.name for p in SWIN.glob('*.py'))


def tiny(name):
    cfg = Config.fromfile(str(SWIN / name))
    cfg.model.backbone.update(TINY_SWIN)
    chans = tuple(16 * 2**i for i in range(4))
    cfg.model.neck.in_channels = chans
    cfg.model.head.in_channels = 16 if cfg.model.neck.fusion == 'sum' else 32
    return cfg


def test_all_swin_pose_configs_ship():
    names = swin_configs()
    for arch in 'tslb':
        for res in ('256x192', '384x288'):
            for method in 'ab':
                assert f'td-hm_swin-{arch}-fusion-{method}_8xb32-210e_coco-{res}.py' in names


@pytest.mark.parametrize('name', swin_configs())
def test_swin_pose_config_builds_and_runs(name):
    cfg = Config.fromfile(str(SWIN / name))
    width = cfg.model.backbone.embed_dims
    assert cfg.model.backbone.out_indices == (0, 1, 2, 3)
    assert cfg.model.neck.in_channels == (width, 2 * width, 4 * width, 8 * width)
    assert cfg.model.head.in_channels == (width if cfg.model.neck.fusion == 'sum' else 2 * width)
    assert not cfg.model.head.deconv_out_channels
    init_default_scope('mmpose')
    cfg = tiny(name)
    model = MODELS.build(cfg.model).eval()
    w, h = cfg.codec.input_size
    with torch.no_grad():
        out = model._forward(torch.randn(1, 3, h, w))
    assert out.shape == (1, 17, h // 4, w // 4)
    assert tuple(cfg.codec.heatmap_size) == (w // 4, h // 4)


def test_swin_pose_lifecycle(coco_dir, tmp_path, images):
    """Trains (the loss falls), saves, reloads strictly, resumes, infers, tests."""
    cfg = tiny('td-hm_swin-t-fusion-b_8xb32-210e_coco-256x192.py')
    cfg.optim_wrapper.pop('paramwise_cfg', None)
    lifecycle(cfg, coco_dir, tmp_path / 'work', images / 'sunglasses.jpg')
