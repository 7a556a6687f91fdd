"""MAE pre-training of the ViT on person crops, and fine-tuning from it."""
import json
import uuid

import cv2
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from mmpose.registry import MODELS

from helpers import CONFIGS, SHARED_DATA, TINY_ARCH, run_main, tiny_config

MAE = CONFIGS / 'vitpose' / 'mae'


def tiny_mae_config(root=SHARED_DATA, iters=200):
    cfg = Config.fromfile(str(MAE / 'mae_vit-base_8xb64-1600e_coco-aic-crops-256x192.py'))
    cfg.model.backbone.arch = dict(TINY_ARCH)
    cfg.model.update(decoder_dims=64, decoder_depth=1, decoder_heads=4)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
        dict(type='CosineAnnealingLR', T_max=iters - 20, by_epoch=False, begin=20, end=iters)]
    cfg.auto_scale_lr = dict(enable=False)
    cfg.default_hooks.logger.interval = 20
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=iters, by_epoch=False)
    cfg.log_processor = dict(by_epoch=False, window_size=20)
    cfg.randomness = dict(seed=0)
    loader = cfg.train_dataloader
    loader.update(batch_size=16, num_workers=0, persistent_workers=False,
                  sampler=dict(type='InfiniteSampler', shuffle=True))
    for ds, name, ann in zip(loader.dataset.datasets, ('coco', 'aic'),
                             ('test_coco.json', 'test_aic.json')):
        ds.update(data_root=str(root / name), ann_file=ann, data_prefix=dict(img=''))
    return cfg


def test_masking_hides_exactly_three_quarters():
    init_default_scope('mmpose')
    model = MODELS.build(tiny_mae_config().model)
    keep, mask = model.random_masking(8, 192, 'cpu')
    assert keep.shape == (8, 48) and (mask.sum(1) == 144).all()  # round(0.75 * 192)
    assert (mask.gather(1, keep) == 0).all()
    assert len({tuple(k.tolist()) for k in keep}) == 8  # a different pattern per image
    keep, mask = model.random_masking(2, 35, 'cpu')
    assert (mask.sum(1) == 26).all()  # round(26.25)


def test_loss_counts_hidden_patches_only():
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = MODELS.build(tiny_mae_config().model)
    imgs = torch.randn(2, 3, 256, 192)
    out = model.reconstruct(imgs)
    pred, mask = out['pred'], out['mask']
    loss = model.reconstruction_loss(imgs, pred, mask)
    visible = pred.clone()
    visible[mask == 0] += 10.0
    assert torch.equal(model.reconstruction_loss(imgs, visible, mask), loss)
    hidden = pred.clone()
    hidden[mask == 1] += 10.0
    assert model.reconstruction_loss(imgs, hidden, mask) > loss + 50
    # with normalised targets, predicting zero everywhere costs exactly 1 per hidden patch
    zero = model.reconstruction_loss(imgs, torch.zeros_like(pred), mask)
    assert zero.item() == pytest.approx(1.0, abs=0.02)


def test_encoder_sees_only_visible_tokens():
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = MODELS.build(tiny_mae_config().model).eval()
    imgs = torch.randn(1, 3, 256, 192)
    keep, mask = model.random_masking(1, 192, 'cpu')
    latent, hw = model.encode(imgs, keep, mask)
    assert latent.shape == (1, 48, TINY_ARCH['embed_dims']) and hw == (16, 12)
    # a hidden patch's pixels do not reach the encoder
    hidden = next(i for i in range(192) if i not in keep[0].tolist())
    r, c = divmod(hidden, 12)
    changed = imgs.clone()
    changed[..., r * 16 + 4:r * 16 + 12, c * 16 + 4:c * 16 + 12] += 5.0  # its interior
    assert torch.equal(model.encode(changed, keep, mask)[0], latent)
    # nor does any pixel of any hidden patch, although the patch convolution (padding 2)
    # reads a 2-pixel strip of the patches above and left of every visible token
    pixels = F.interpolate(mask.reshape(1, 1, 16, 12), scale_factor=16.0) > 0
    changed = torch.where(pixels, torch.randn_like(imgs) * 10, imgs)
    assert torch.equal(model.encode(changed, keep, mask)[0], latent)
    # without the masking of pixels a visible token would see its hidden neighbours
    leak, _ = model.backbone.patch_embed(changed)
    seen, _ = model.backbone.patch_embed(imgs)
    assert not torch.equal(leak[0, keep[0]], seen[0, keep[0]])


@pytest.mark.slow
def test_pretrain_on_crops_then_finetune(tmp_path):
    """Pre-training (from the dumped config file) and the picture run in this process,
    through MMEngine's runner and the tool's ``main(argv)``; the ``mim train`` command line
    itself: test_runner.py::test_mim_train_and_test_cli."""
    for name in ('coco', 'aic'):
        if not (SHARED_DATA / name).is_dir():
            pytest.skip(f'shared {name} data not found under {SHARED_DATA}')
    cfg = tiny_mae_config()
    cfg.dump(str(tmp_path / 'mae.py'))
    cfg = Config.fromfile(str(tmp_path / 'mae.py'))
    cfg.work_dir = str(tmp_path / 'mae')
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    Runner.from_cfg(cfg).train()
    logged = [json.loads(line) for p in (tmp_path / 'mae').rglob('scalars.json')
              for line in p.read_text().splitlines()]
    losses = [r['loss'] for r in logged if 'loss' in r]
    print('MAE loss every 20 iterations:', [round(x, 3) for x in losses])
    # 1.0 is what predicting each hidden patch's mean (zero) costs
    assert losses[0] > 0.93 and losses[-1] < 0.87 and losses[-1] < losses[0] - 0.08
    ckpt = tmp_path / 'mae' / 'iter_200.pth'

    # the picture
    run_main('tools/mae_visualize.py', tmp_path / 'mae.py', ckpt, '--num', '3', '--out',
             tmp_path / 'mae.png')
    assert cv2.imread(str(tmp_path / 'mae.png')).shape == (28 + 3 * 256, 3 * 192, 3)

    # step 2: the fine-tuning config takes the encoder with no missing backbone key
    init_default_scope('mmpose')
    pose_cfg = Config.fromfile(str(MAE / 'td-hm_vitpose-base-from-mae_8xb64-210e_coco-256x192.py'))
    tiny = tiny_config('td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
    pose_cfg.model.backbone.arch = tiny.model.backbone.arch
    pose_cfg.model.head = tiny.model.head
    pose_cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    pose = MODELS.build(pose_cfg.model)
    pose.init_weights()
    encoder = {k[len('backbone.'):]: v for k, v in
               _load_checkpoint(str(ckpt))['state_dict'].items()
               if k.startswith('backbone.')}
    assert set(encoder) == set(pose.backbone.state_dict())
    for k, v in pose.backbone.state_dict().items():
        assert torch.equal(v, encoder[k]), k

    # and a fine-tuning run starts from it through the runner
    from helpers import on_shared_coco
    pose_cfg = on_shared_coco(pose_cfg, SHARED_DATA / 'coco', tmp_path / 'finetune')
    pose_cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    runner = Runner.from_cfg(pose_cfg)
    runner.train()
    assert runner.iter == 2


def test_mae_lifecycle(tmp_path):
    """MAE through the runner: the loss on a fixed batch falls, the checkpoint reloads
    strictly into a fresh model (same reconstruction), and the run resumes."""
    import copy

    from helpers import fixed_batch_loss
    for name in ('coco', 'aic'):
        if not (SHARED_DATA / name).is_dir():
            pytest.skip(f'shared {name} data not found under {SHARED_DATA}')
    cfg = tiny_mae_config(iters=4)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.param_scheduler = [dict(type='MultiStepLR', milestones=[10**6], by_epoch=False)]
    cfg.train_dataloader.batch_size = 4
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=4, by_epoch=False)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    from mmengine.dataset import pseudo_collate
    dataset = runner.train_dataloader.dataset  # (the sampler is infinite: not iterated here)
    batch = pseudo_collate([dataset[i] for i in range(4)])
    runner.model.init_weights()
    before = fixed_batch_loss(runner.model.train(), batch)
    runner.train()
    assert fixed_batch_loss(runner.model, batch) < before
    init_default_scope('mmpose')
    fresh = MODELS.build(cfg.model)
    fresh.load_state_dict(_load_checkpoint(str(tmp_path / 'work' / 'iter_4.pth'))['state_dict'])
    x = torch.randn(1, 3, 256, 192)
    torch.manual_seed(0)
    want = runner.model.eval().reconstruct(x)['pred']
    torch.manual_seed(0)
    assert torch.equal(fresh.eval().reconstruct(x)['pred'], want)
    cfg.train_cfg.max_iters, cfg.resume = 5, True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 5
