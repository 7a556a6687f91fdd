import os
import re

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
    for part in ('mhsa', 'ffn'):  # paper Table 6
        assert f'td-hm_vitpose-base-frozen-{part}_8xb64-210e_coco-256x192.py' in names


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


def all_configs():
    return sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob('*.py'))


def _header(path):
    lines = (CONFIGS / path).read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if not line.startswith('#'))
    return ' '.join(line[2:] for line in lines[:end])


@pytest.mark.parametrize('path', all_configs())
def test_header_quotes_the_figure_of_its_own_setting(path):
    """Every config starts with what it is and the published figure of that setting, or
    says that there is none."""
    header = _header(path)
    figure = re.search(r'\d+\.\d (COCO |val |COCO val )?AP', header)
    none = re.search(r'not in the paper|no (published|COCO) figure', header, re.IGNORECASE)
    assert figure or none, header


@pytest.mark.parametrize('path', [p for p in all_configs()
                                  if "_base_ = ['./" in (CONFIGS / p).read_text()
                                  or "_base_ = ['../" in (CONFIGS / p).read_text()])
def test_no_config_is_identical_to_its_parent(path):
    text = (CONFIGS / path).read_text()
    parent = re.search(r"_base_ = \['([^']+)'\]", text).group(1)
    child = Config.fromfile(str(CONFIGS / path))
    base = Config.fromfile(str((CONFIGS / path).parent / parent))
    strip = lambda c: {k: v for k, v in c.to_dict().items() if k != 'filename'}  # noqa: E731
    assert strip(child) != strip(base), f'{path} only restates {parent}'


def _pretrained(cfg):
    init = cfg.model.get('backbone', {}).get('init_cfg') or {}
    return init.get('checkpoint', '') if isinstance(init, dict) else ''


@pytest.mark.parametrize('path', all_configs())
def test_pretrained_weights_match_the_architecture(path):
    """The file a backbone is initialised from is of that backbone's architecture (name,
    width, depth, window), read off the published file names."""
    cfg = Config.fromfile(str(CONFIGS / path))
    path_or_url = _pretrained(cfg)
    url = os.path.basename(path_or_url)
    if not url:
        return
    b = cfg.model.backbone
    if b.type == 'ViT':  # MMPose's MAE files, or your own MAE run's work_dir
        assert re.search(rf'vit[_-]{b.arch}', path_or_url), (b.arch, path_or_url)
    elif b.type == 'SwinTransformer':
        size = {96: 'tiny' if b.depths[2] == 6 else 'small', 128: 'base', 192: 'large'}
        m = re.match(r'swin_(\w+?)_patch4_window(\d+)_(\d+)', url)
        assert m and m.group(1) == size[b.embed_dims], (b.embed_dims, b.depths, url)
        assert int(m.group(2)) == b.window_size, (b.window_size, url)
    elif b.type in ('HRNet', 'TruncatedHRNet'):
        assert f'hrnet_w{b.extra.stage2.num_channels[0]}' in url, url
    elif b.type == 'ResNet':
        assert f'resnet{b.depth}' in url, url
    else:
        raise AssertionError(f'{path}: no check for a {b.type} backbone ({url})')


def _data_paths(cfg):
    """The data roots and annotation files of a config's loaders and evaluators."""
    paths = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader') or {}
        ds = loader.get('dataset') or {}
        for d in ds.get('datasets', [ds]):
            paths += [d.get('data_root'), d.get('ann_file')]
        evaluator = cfg.get(f'{split}_evaluator') or {}
        for e in evaluator if isinstance(evaluator, list) else [evaluator]:
            paths.append(e.get('ann_file'))
    return [str(p) for p in paths if p]


def test_shared_data_comes_from_the_environment_or_the_config_location(monkeypatch, tmp_path):
    """Configs that read the shared data find it from VITPOSE_SHARED_DATA, else beside the
    repository as seen from the config file: never from the working directory."""
    monkeypatch.chdir(tmp_path)
    beside = os.path.realpath(CONFIGS / '..' / '..' / 'shared' / 'data')
    shared = []
    # the configs that read it, and those that inherit from them
    for path in [p for p in all_configs() if re.search(r'shared|sanity/|coco_mini/',
                                                       (CONFIGS / p).read_text())]:
        monkeypatch.delenv('VITPOSE_SHARED_DATA', raising=False)
        found = [p for p in _data_paths(Config.fromfile(str(CONFIGS / path))) if 'shared' in p]
        if not found:
            continue
        shared.append(path)
        assert all(p.startswith(beside + '/') for p in found), (path, found)
        monkeypatch.setenv('VITPOSE_SHARED_DATA', '/elsewhere/data')
        moved = [p for p in _data_paths(Config.fromfile(str(CONFIGS / path)))]
        assert [p.replace('/elsewhere/data', beside) for p in moved if 'elsewhere' in p] == \
            found, (path, moved)
    assert {'vitpose/sanity/td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py',
            'vitpose/coco_mini/td-hm_vitpose-small_1xb16-40e_coco-mini-256x192.py'} <= set(shared)
