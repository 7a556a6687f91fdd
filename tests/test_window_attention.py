"""Window, shifted-window and pooling-window attention (paper Table 5)."""
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

from helpers import CONFIGS
from vitpose_plugin.models.backbones.attention import Attention
from vitpose_plugin.models.backbones.vit import ATTN_TYPES, ViT, block_attention_types
from vitpose_plugin.models.backbones.window_attention import WindowAttention

ARCH = dict(embed_dims=32, num_layers=4, num_heads=2)


def _vit(**kwargs):
    torch.manual_seed(0)
    return ViT(arch=ARCH, **kwargs).eval()


@pytest.mark.parametrize('window', [(16, 12), (20, 20)])
@pytest.mark.parametrize('attn_type', ['window', 'window+shift'])
def test_window_covering_the_grid_equals_full(window, attn_type):
    """One window over the whole 16x12 grid (padded and masked when larger)."""
    full = _vit()
    win = _vit(attn_type=attn_type, window_size=window)
    win.load_state_dict(full.state_dict())  # no new parameters: loads strictly
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        assert (full(x)[0] - win(x)[0]).abs().max() <= 1e-5


@pytest.mark.parametrize('attn_type', ATTN_TYPES)
def test_fused_and_explicit_attention_agree(attn_type):
    fused = _vit(attn_type=attn_type, window_size=(5, 4))  # 16x12 does not divide by 5
    explicit = _vit(attn_type=attn_type, window_size=(5, 4), fused_attn=False)
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert torch.allclose(fused(x)[0], explicit(x)[0], atol=1e-5)


def test_block_types():
    assert block_attention_types('window+shift', 4) == [(False, False), (True, False),
                                                       (False, False), (True, False)]
    assert block_attention_types('window+pool', 6, full_attn_every=3) == [
        (False, True), (False, True), 'full', (False, True), (False, True), 'full']
    vit = _vit(attn_type='window+shift+pool', full_attn_every=4)
    assert [type(layer.attn).__name__ for layer in vit.layers] == ['WindowAttention'] * 3 + [
        'Attention']
    with pytest.raises(ValueError, match='swin'):
        ViT(arch=ARCH, attn_type='swin')


def dependencies(attn, h, w, c=8):
    """deps[i, j]: output token i depends on input token j (from the Jacobian)."""
    x = torch.randn(1, h * w, c, requires_grad=True)
    deps = np.zeros((h * w, h * w), bool)
    for i in range(h * w):
        (grad, ) = torch.autograd.grad(attn(x, (h, w))[0, i].sum(), x)
        deps[i] = grad[0].abs().sum(-1).numpy() > 0
    return deps


@pytest.mark.parametrize('h,w', [(8, 8), (10, 7)])
def test_shifted_windows_attend_only_to_unshifted_neighbours(h, w):
    torch.manual_seed(0)
    wh, ww = 4, 4
    attn = WindowAttention(8, 2, (wh, ww), shift=True)
    deps = dependencies(attn, h, w)
    # Expected, written in image coordinates: windows start at -wh/2, -ww/2, and
    # nothing wraps around (floor division keeps the first rows/columns apart).
    r, c = np.divmod(np.arange(h * w), w)
    group_r, group_c = (r + wh // 2) // wh, (c + ww // 2) // ww
    expected = (group_r[:, None] == group_r[None]) & (group_c[:, None] == group_c[None])
    np.testing.assert_array_equal(deps, expected)
    # so every dependency is a neighbour in the unshifted image ...
    i, j = np.nonzero(deps)
    assert (np.abs(r[i] - r[j]) < wh).all() and (np.abs(c[i] - c[j]) < ww).all()
    # ... and the shift crosses the unshifted windows' borders
    plain = dependencies(WindowAttention(8, 2, (wh, ww)), h, w)
    assert (deps & ~plain).any()


def test_pooling_window_sees_far_tokens_and_window_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 16 * 12, 8)
    far = x.clone()
    far[0, -1] += 5.0  # bottom-right token, far from token 0's 4x4 window
    for pool, changes in ((False, False), (True, True)):
        attn = WindowAttention(8, 2, (4, 4), pool=pool)
        with torch.no_grad():
            delta = (attn(x, (16, 12))[0, 0] - attn(far, (16, 12))[0, 0]).abs().max()
        assert (delta > 1e-4) == changes, (pool, delta)


def saved_bytes(module, n_tokens, c=32):
    """Bytes autograd keeps for backward in one forward of ``module`` on a square grid."""
    side = int(math.isqrt(n_tokens))
    x = torch.randn(1, side * side, c, requires_grad=True)
    skip = {p.data_ptr() for p in module.parameters()}  # weights are saved by reference
    total = []

    def pack(t):
        if t.data_ptr() not in skip:
            total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x, (side, side))
    return sum(total)


def test_memory_window_linear_full_quadratic():
    """Explicit attention (as the paper measured): the fit of log(bytes) on log(N)."""
    tokens = [16**2, 32**2, 64**2]
    slopes = {}
    for name, attn in (('full', Attention(32, 2, fused=False)),
                       ('window 8x8', WindowAttention(32, 2, (8, 8), fused=False))):
        mem = [saved_bytes(attn, n) for n in tokens]
        slopes[name] = np.polyfit(np.log(tokens), np.log(mem), 1)[0]
        print(f'{name}: saved bytes {mem} at N={tokens} -> slope {slopes[name]:.2f}')
    assert 1.8 < slopes['full'] <= 2.0
    assert 0.98 <= slopes['window 8x8'] < 1.02


def table5_configs():
    return sorted(p.name for p in (CONFIGS / 'vitpose' / 'coco' / 'attention').glob('*.py'))


def test_table5_configs_ship():
    names = ' '.join(table5_configs())
    for row in ('full', 'window', 'window-shift', 'window-pool', 'window-shift-pool',
                'full-window', 'window16x12-shift-pool'):
        assert f'_{row}_' in names or f'-{row}_' in names, row


@pytest.mark.parametrize('name', table5_configs())
def test_table5_configs_build_and_load_full_checkpoints(name):
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'coco' / 'attention' / name))
    cfg.model.backbone.arch = dict(embed_dims=32, num_layers=4, num_heads=2)
    cfg.model.backbone.init_cfg = None
    cfg.model.head.in_channels = 32
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model).eval()
    full_cfg = cfg.copy()
    full_cfg.model.backbone.attn_type = 'full'
    full = MODELS.build(full_cfg.model)
    model.load_state_dict(full.state_dict())  # strict: no new parameters
    h, w = cfg.model.backbone.img_size
    with torch.no_grad():
        out = model._forward(torch.randn(1, 3, h, w))
    assert out.shape == (1, 17, h // 4, w // 4)
