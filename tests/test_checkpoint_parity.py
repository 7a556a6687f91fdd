"""Heatmap parity with checkpoints in the official and MMPose-released layouts.

The expected heatmaps come from ``reference_vitpose.forward``, an independent
functional implementation that reads the source layout directly.
"""
import pytest
import reference_vitpose as ref
import torch
from mmengine.runner.checkpoint import load_checkpoint
from mmpose.apis import init_model

from helpers import TINY_ARCH, tiny_config
from vitpose_plugin.models.backbones.vit import ViT

CLASSIC = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
SIMPLE = 'td-hm_vitpose-base-simple_8xb64-210e_coco-256x192.py'


def _save(tmp_path, sd, name='ckpt.pth'):
    path = tmp_path / name
    torch.save({'state_dict': sd, 'meta': dict(note='made by a test')}, path)
    return str(path)


@pytest.mark.parametrize('layout', ['official', 'mmpretrain'])
@pytest.mark.parametrize('config,simple', [(CLASSIC, False), (SIMPLE, True)])
@pytest.mark.parametrize('size', [(256, 192), (384, 288)])
def test_heatmap_parity(tmp_path, layout, config, simple, size):
    sd = ref.random_checkpoint(layout, dims=TINY_ARCH['embed_dims'], simple=simple)
    path = _save(tmp_path, sd)
    model = init_model(tiny_config(config), path, device='cpu')
    img = torch.randn(2, 3, *size)
    with torch.no_grad():
        got = model._forward(img)
        want = ref.forward(sd, layout, img, TINY_ARCH['num_heads'], simple=simple)
    assert got.shape == (2, 17, size[0] // 4, size[1] // 4)
    assert (got - want).abs().max().item() <= 1e-4


def test_mae_weights_through_init_cfg(tmp_path):
    """MAE ViT-H/14-style weights: {'model': ...}, cls token, 14x14 kernel and grid."""
    dims, g = 64, torch.Generator().manual_seed(1)
    mae = {'cls_token': torch.randn(1, 1, dims, generator=g),
           'pos_embed': torch.randn(1, 1 + 16 * 16, dims, generator=g),
           'patch_embed.proj.weight': torch.randn(dims, 3, 14, 14, generator=g),
           'patch_embed.proj.bias': torch.randn(dims, generator=g),
           'norm.weight': torch.randn(dims, generator=g), 'norm.bias': torch.randn(dims)}
    for i in range(2):
        for k, shape in (('norm1.weight', (dims, )), ('attn.qkv.weight', (3 * dims, dims)),
                         ('mlp.fc1.weight', (4 * dims, dims))):
            mae[f'blocks.{i}.{k}'] = torch.randn(*shape, generator=g)
    path = tmp_path / 'mae.pth'
    torch.save({'model': mae}, path)
    vit = ViT(arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    vit.init_weights()
    assert torch.equal(vit.layers[1].attn.qkv.weight, mae['blocks.1.attn.qkv.weight'])
    assert torch.equal(vit.layers[0].mlp.fc1.weight, mae['blocks.0.mlp.fc1.weight'])
    # cls position kept as the shared slot 0, 16x16 grid resized to 16x12
    assert torch.equal(vit.pos_embed[:, :1], mae['pos_embed'][:, :1])
    grid = mae['pos_embed'][:, 1:].reshape(1, 16, 16, dims).permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(grid, size=(16, 12), mode='bicubic',
                                           align_corners=False)
    assert torch.allclose(vit.pos_embed[:, 1:], want.flatten(2).transpose(1, 2), atol=1e-6)
    # the 14x14 kernel zero-padded (centred) to the model's 16x16, as the authors' loader
    # does by default; bicubic resizing is the named other option
    kernel = mae['patch_embed.proj.weight']
    assert torch.equal(vit.patch_embed.proj.weight,
                       torch.nn.functional.pad(kernel, (1, 1, 1, 1)))
    assert torch.equal(vit.patch_embed.proj.bias, mae['patch_embed.proj.bias'])
    bicubic = ViT(arch=TINY_ARCH, patch_kernel_fit='bicubic',
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    bicubic.init_weights()
    assert torch.allclose(bicubic.patch_embed.proj.weight, torch.nn.functional.interpolate(
        kernel, size=(16, 16), mode='bicubic', align_corners=False))
    assert not torch.allclose(bicubic.patch_embed.proj.weight, vit.patch_embed.proj.weight)
    # MAE's encoder norm is not ViTPose's last_norm: it stays at its init
    assert torch.equal(vit.last_norm.weight, torch.ones(dims))


def test_backbone_from_pose_checkpoint_with_prefix(tmp_path):
    sd = ref.random_checkpoint('mmpretrain', dims=TINY_ARCH['embed_dims'])
    path = _save(tmp_path, sd)
    vit = ViT(arch=TINY_ARCH, init_cfg=dict(type='Pretrained', prefix='backbone.',
                                            checkpoint=path))
    vit.init_weights()
    assert torch.equal(vit.last_norm.weight, sd['backbone.ln1.weight'])
    assert torch.equal(vit.layers[1].mlp.fc2.weight, sd['backbone.layers.1.ffn.layers.1.weight'])
    assert torch.equal(vit.pos_embed[:, 0], torch.zeros_like(vit.pos_embed[:, 0]))


def test_plugin_checkpoint_round_trip(tmp_path):
    """A checkpoint the plugin saves loads back strictly with identical outputs."""
    sd = ref.random_checkpoint('official', dims=TINY_ARCH['embed_dims'])
    model = init_model(tiny_config(CLASSIC), _save(tmp_path, sd), device='cpu')
    path = tmp_path / 'plugin.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    again = init_model(tiny_config(CLASSIC), str(path), device='cpu')
    img = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert torch.equal(model._forward(img), again._forward(img))
    assert any(k.startswith('backbone.layers.0.attn.qkv') for k in again.state_dict())
    load_checkpoint(again, str(path), strict=True)  # MMEngine's strict path agrees
