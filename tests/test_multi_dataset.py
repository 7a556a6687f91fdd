"""Shared backbone + one decoder per dataset, and ViTPose+ mixture of experts."""
import re
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpose.apis import init_model
from mmpose.registry import DATASETS, MODELS

from helpers import CONFIGS, REPO, SHARED_DATA, TINY_ARCH, tiny_config

CONFIG = (CONFIGS / 'vitpose' / 'multi_dataset' /
          'td-hm_vitpose-base_8xb64-210e_coco-aic-mpii-256x192.py')
ANN = dict(coco='test_coco.json', aic='test_aic.json', mpii='test_mpii.json')
KPTS = dict(coco=17, aic=14, mpii=16)


@pytest.fixture
def shared_sets():
    for name, ann in ANN.items():
        if not (SHARED_DATA / name / ann).is_file():
            pytest.skip(f'shared {name} data not found under {SHARED_DATA} (VITPOSE_SHARED_DATA)')
    return SHARED_DATA


def tiny_multi(moe=False):
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.arch = dict(TINY_ARCH)
    cfg.model.backbone.init_cfg = None
    if moe:
        cfg.model.backbone.update(num_experts=3, part_features=16)
    for head in cfg.model.heads.values():
        head.update(in_channels=TINY_ARCH['embed_dims'], deconv_out_channels=(32, 32))
    return cfg


def on_shared_data(cfg, root, work_dir):
    """Point every dataset of the config at ../shared/data."""
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=13, num_workers=0, persistent_workers=False)
        sets = loader.dataset.get('datasets', [loader.dataset])  # test: COCO alone
        for ds, name in zip(sets, ('coco', 'aic', 'mpii')):
            ds.update(data_root=str(root / name), ann_file=ANN[name], data_prefix=dict(img=''))
            ds.pop('bbox_file', None)
            ds.pop('headbox_file', None)
    cfg.val_evaluator.metrics[0].ann_file = str(root / 'coco' / ANN['coco'])
    cfg.val_evaluator.metrics[1].ann_file = str(root / 'aic' / ANN['aic'])
    # no MPII head boxes in the shared set: PCK normalised by the person box
    cfg.val_evaluator.metrics[2] = dict(type='PCKAccuracy', norm_item='bbox', prefix='mpii')
    cfg.test_evaluator.ann_file = str(root / 'coco' / ANN['coco'])
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = [dict(type='LinearLR', begin=0, end=2, start_factor=0.1,
                                by_epoch=False)]
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=512)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    return cfg


@pytest.mark.parametrize('moe', [False, True])
def test_train_and_test_on_three_datasets(shared_sets, tmp_path, moe):
    cfg = on_shared_data(tiny_multi(moe), shared_sets, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2  # 12 + 9 + 5 people, batches of 13
    logged = ''.join(p.read_text() for p in (tmp_path / 'work').rglob('scalars.json'))
    for name in ('coco', 'aic', 'mpii'):
        assert f'"mse_{name}"' in logged
    # validation covers every dataset, each with its own metric
    for key in ('"coco/AP"', '"aic/AP"', '"mpii/PCK"'):
        assert key in logged
    # testing is COCO val with its own pipeline (what inference_topdown composes too)
    metrics = runner.test()
    assert set(metrics) >= {'coco/AP', 'coco/AR'} and not any('aic' in k for k in metrics)


def _batch(model, root, names):
    """A preprocessed training batch with one sample of each dataset in ``names``."""
    init_default_scope('mmpose')
    cfg = tiny_multi()
    samples = []
    for name in names:
        ds_cfg = next(d for d in cfg.train_dataloader.dataset.datasets
                      if d.type.lower().startswith(name[:3]))
        ds_cfg = dict(ds_cfg, data_root=str(root / name), ann_file=ANN[name],
                      data_prefix=dict(img=''))
        samples.append(DATASETS.build(ds_cfg)[0])
    return model.data_preprocessor(pseudo_collate(samples), training=True)


def test_coco_batch_leaves_other_heads_without_gradient(shared_sets):
    init_default_scope('mmpose')
    model = MODELS.build(tiny_multi().model).train()
    data = _batch(model, shared_sets, ['coco', 'coco'])
    losses = model.loss(data['inputs'], data['data_samples'])
    losses['loss_kpt'].backward()
    for name, head in model.heads.items():
        grads = [p.grad for p in head.parameters()]
        if name == 'coco':
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None or torch.count_nonzero(g) == 0 for g in grads), name


def test_loss_is_the_mean_over_samples(shared_sets):
    init_default_scope('mmpose')
    model = MODELS.build(tiny_multi().model).train()
    data = _batch(model, shared_sets, ['coco', 'mpii', 'mpii', 'aic'])
    losses = model.loss(data['inputs'], data['data_samples'])
    want = (losses['mse_coco'] + 2 * losses['mse_mpii'] + losses['mse_aic']) / 4
    assert torch.allclose(losses['loss_kpt'], want)
    # each head saw its own keypoint count: heatmaps of 17 / 16 / 14 channels
    feats = model.extract_feat(data['inputs'], model.dataset_indices(data['data_samples']))
    assert [model.heads[n](feats).shape[1] for n in ('coco', 'aic', 'mpii')] == [17, 14, 16]


def test_inference_picks_the_default_or_chosen_decoder(tmp_path):
    init_default_scope('mmpose')
    model = MODELS.build(tiny_multi().model).eval()
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        assert model._forward(x).shape == (2, 17, 64, 48)
        model.default_dataset = 'mpii'
        assert model._forward(x).shape == (2, 16, 64, 48)


def to_official_vitpose_plus(sd, names):
    """The plugin's state dict in the official ViTPose+ key layout."""
    out = {}
    for k, v in sd.items():
        k = k.replace('backbone.layers.', 'backbone.blocks.')
        m = re.match(r'^heads\.(\w+)\.(.*)$', k)
        if m:
            i = names.index(m.group(1))
            k = (f'keypoint_head.{m.group(2)}' if i == 0 else
                 f'associate_keypoint_heads.{i - 1}.{m.group(2)}')
        out[k] = v
    return out


def test_vitpose_plus_split_equals_moe_model(tmp_path):
    """Expert i merged into fc2 == the MoE model on dataset i (<= 1e-4)."""
    init_default_scope('mmpose')
    torch.manual_seed(0)
    cfg = tiny_multi(moe=True)
    moe = MODELS.build(cfg.model).eval()
    for m in moe.modules():  # make the BN statistics matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    names = list(cfg.model.heads)
    official = tmp_path / 'vitpose_plus.pth'
    torch.save({'state_dict': to_official_vitpose_plus(moe.state_dict(), names)}, official)

    # the official layout loads strictly into the MoE model
    cfg_path = tmp_path / 'moe.py'
    cfg.dump(str(cfg_path))
    loaded = init_model(str(cfg_path), str(official), device='cpu')
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        for i, name in enumerate(names):
            loaded.default_dataset = moe.default_dataset = name
            assert torch.equal(loaded._forward(x), moe._forward(x))

    out = subprocess.run([sys.executable, str(REPO / 'tools' / 'split_vitpose_plus.py'),
                          str(official), str(tmp_path / 'split'), '--datasets'] + names,
                         check=True, capture_output=True, text=True).stdout
    for name in names:
        assert f'{name}: {KPTS[name]} keypoints' in out
        plain_cfg = tiny_config('td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
        plain_cfg.model.head.out_channels = KPTS[name]
        plain = init_model(plain_cfg, str(tmp_path / 'split' / f'vitpose_plus_{name}.pth'),
                           device='cpu')
        moe.default_dataset = name
        with torch.no_grad():
            assert (plain._forward(x) - moe._forward(x)).abs().max() <= 1e-4, name


@pytest.mark.parametrize('name', sorted(p.name for p in (CONFIGS / 'vitpose' / 'multi_dataset')
                                        .glob('*.py')))
def test_multi_dataset_configs_build(name):
    """Each config builds (tiny widths), runs every head, and its evaluator finds each
    dataset's metainfo (APT-36K included)."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'multi_dataset' / name))
    names = cfg.model.dataset_names
    assert set(names) == set(cfg.model.heads) and len(cfg.train_dataloader.dataset.datasets) \
        == len(names) == len(cfg.val_evaluator.metrics)
    cfg.model.backbone.arch = dict(TINY_ARCH)
    cfg.model.backbone.init_cfg = None
    if cfg.model.backbone.get('num_experts'):
        assert cfg.model.backbone.num_experts == len(names)
        assert cfg.model.backbone.part_features * 4 == dict(
            small=384, base=768, large=1024, huge=1280)[name.split('-')[3].split('_')[0]]
        cfg.model.backbone.part_features = 16
    for head in cfg.model.heads.values():
        head.update(in_channels=TINY_ARCH['embed_dims'], deconv_out_channels=(32, 32))
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 3, 256, 192)
    for ds in names:
        model.default_dataset = ds
        with torch.no_grad():
            assert model._forward(x).shape[1] == cfg.model.heads[ds].out_channels
    # MultiDatasetEvaluator routes samples by the dataset_name of each type's METAINFO
    found = [parse_pose_metainfo(DATASETS.get(d.type).METAINFO)['dataset_name']
             for d in cfg.val_evaluator.datasets]
    assert found == names


def _tiny_any_multi(name):
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'multi_dataset' / name))
    cfg.model.backbone.arch = dict(TINY_ARCH)
    cfg.model.backbone.init_cfg = None
    if cfg.model.backbone.get('num_experts'):
        cfg.model.backbone.part_features = 16
    for head in cfg.model.heads.values():
        head.update(in_channels=TINY_ARCH['embed_dims'], deconv_out_channels=(32, 32))
    return cfg


@pytest.mark.parametrize('name', sorted(p.name for p in (CONFIGS / 'vitpose' / 'multi_dataset')
                                        .glob('*.py')))
def test_every_multi_dataset_config_runs_inference_topdown(name, images):
    """inference_topdown (so the demo and MMPoseInferencer) composes the test pipeline:
    COCO's, which routes the sample to the COCO head (and expert)."""
    from mmpose.apis import inference_topdown
    init_default_scope('mmpose')
    model = init_model(_tiny_any_multi(name), None, device='cpu')
    result, = inference_topdown(model, str(images / 'sunglasses.jpg'),
                                np.array([[20, 10, 200, 250]], np.float32))
    assert result.pred_instances.keypoints.shape == (1, 17, 2)
    assert result.metainfo['dataset_name'] == 'coco'


def test_multi_dataset_lifecycle(shared_sets, tmp_path, images):
    """ViTPose+ (experts) through the runner: trains, saves, reloads strictly, resumes,
    infers, tests."""
    from helpers import lifecycle
    cfg = on_shared_data(tiny_multi(moe=True), shared_sets, tmp_path / 'work')
    cfg.optim_wrapper.paramwise_cfg.num_layers = TINY_ARCH['num_layers']
    lifecycle(cfg, None, tmp_path / 'work', images / 'sunglasses.jpg', people=1)
