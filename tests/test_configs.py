import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

from helpers import CONFIGS, TINY_ARCH, tiny_config, vitpose_configs
from vitpose_plugin.models.backbones.vit import ARCHS

# The official recipe per size: (layer decay, drop path)
RECIPE = {'small': (0.8, 0.1), 'base': (0.75, 0.3), 'large': (0.8, 0.5), 'huge': (0.85, 0.55)}


def test_all_expected_configs_ship():
    names = vitpose_configs()
    for arch in RECIPE:
        assert f'td-hm_vitpose-{arch}_8xb64-210e_coco-256x192.py' in names
        assert f'td-hm_vitpose-{arch}-simple_8xb64-210e_coco-256x192.py' in names
    assert 'td-hm_vitpose-base_8xb64-210e_coco-384x288.py' in names
    assert 'td-hm_vitpose-base_8xb64-210e_coco-576x432.py' in names


@pytest.mark.parametrize('name', vitpose_configs())
def test_config_follows_official_recipe(name):
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'coco' / name))
    assert cfg.custom_imports.imports == ['vitpose_plugin']
    arch = cfg.model.backbone.arch
    decay, drop_path = RECIPE[arch]
    assert cfg.model.head.in_channels == ARCHS[arch]['embed_dims']
    assert cfg.optim_wrapper.paramwise_cfg == dict(
        num_layers=ARCHS[arch]['num_layers'], layer_decay_rate=decay)
    assert cfg.model.backbone.drop_path_rate == drop_path
    assert f'mae_pretrain_vit_{arch}' in cfg.model.backbone.init_cfg.checkpoint
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.betas, opt.weight_decay) == ('AdamW', 5e-4, (0.9, 0.999), 0.1)
    assert cfg.optim_wrapper.clip_grad.max_norm == 1.0
    assert cfg.param_scheduler[0].end == 500 and cfg.param_scheduler[1].milestones == [170, 200]
    assert cfg.train_cfg.max_epochs == 210 and cfg.auto_scale_lr.base_batch_size == 512
    h, w = cfg.model.backbone.img_size
    assert cfg.codec.input_size == (w, h) and cfg.codec.heatmap_size == (w // 4, h // 4)
    assert cfg.model.head.decoder == cfg.codec
    for pipeline in (cfg.train_pipeline, cfg.val_dataloader.dataset.pipeline):
        affine = [t for t in pipeline if t.type == 'TopdownAffine'][0]
        assert affine.input_size == (w, h) and affine.use_udp
    assert cfg.model.test_cfg.flip_test
    simple = '-simple' in name
    assert (cfg.model.get('neck') is not None) == simple
    assert cfg.model.head.deconv_out_channels == ([] if simple else (256, 256))


@pytest.mark.parametrize('name', vitpose_configs())
def test_config_builds_and_runs_at_several_sizes(name):
    init_default_scope('mmpose')
    model = MODELS.build(tiny_config(name).model).eval()
    for h, w in ((256, 192), (384, 288), (128, 96)):
        with torch.no_grad():
            out = model._forward(torch.randn(2, 3, h, w))
        assert out.shape == (2, 17, h // 4, w // 4), (name, h, w)


def test_layer_decay_and_no_decay_groups():
    init_default_scope('mmpose')
    cfg = tiny_config('td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
    model = MODELS.build(cfg.model)
    cfg.optim_wrapper.paramwise_cfg.num_layers = TINY_ARCH['num_layers']
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {}
    for group in wrapper.optimizer.param_groups:
        for n in group['param_names']:
            names[n] = (group['lr'], group['weight_decay'])
    base, rate, depth = 5e-4, 0.75, TINY_ARCH['num_layers']
    embed = names['backbone.patch_embed.proj.weight']
    assert embed == pytest.approx((base * rate**(depth + 1), 0.1))
    assert names['backbone.pos_embed'][1] == 0.0
    assert names['backbone.layers.0.attn.qkv.weight'] == pytest.approx((base * rate**depth, 0.1))
    assert names['backbone.layers.1.mlp.fc1.weight'] == pytest.approx((base * rate, 0.1))
    assert names['backbone.layers.1.norm1.weight'][1] == 0.0
    assert names['backbone.layers.1.attn.qkv.bias'][1] == 0.0
    assert names['head.final_layer.weight'] == pytest.approx((base, 0.1))
    assert names['backbone.last_norm.weight'] == pytest.approx((base, 0.0))
