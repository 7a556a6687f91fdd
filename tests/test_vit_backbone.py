import pytest
import torch

from vitpose_plugin.models.backbones.vit import ARCHS, ViT


@pytest.mark.parametrize('size,grid', [((256, 192), (16, 12)), ((384, 288), (24, 18)),
                                       ((576, 432), (36, 27)), ((224, 224), (14, 14)),
                                       ((250, 190), (15, 12))])
def test_any_input_size(size, grid):
    vit = ViT(arch=dict(embed_dims=32, num_layers=1, num_heads=2)).eval()
    out, = vit(torch.randn(2, 3, *size))
    assert out.shape == (2, 32, *grid)


def test_ratio_2_gives_eighth_resolution():
    vit = ViT(arch=dict(embed_dims=32, num_layers=1, num_heads=2), ratio=2).eval()
    assert vit.pos_embed.shape == (1, 32 * 24 + 1, 32)
    assert vit.patch_embed.proj.stride == (8, 8) and vit.patch_embed.proj.padding == (4, 4)
    out, = vit(torch.randn(1, 3, 256, 192))
    assert out.shape == (1, 32, 32, 24)


@pytest.mark.parametrize('arch,params', [('small', 21.7), ('base', 85.8), ('large', 303.3),
                                         ('huge', 630.9)])
def test_presets(arch, params):
    """Parameter counts (millions) of the official ViTPose backbones at 256x192."""
    vit = ViT(arch=arch)
    assert vit.embed_dims == ARCHS[arch]['embed_dims']
    assert len(vit.layers) == ARCHS[arch]['num_layers']
    assert vit.layers[0].attn.num_heads == ARCHS[arch]['num_heads']
    n = sum(p.numel() for p in vit.parameters()) / 1e6
    assert abs(n - params) < 0.1, n


def test_bad_arch_is_named():
    with pytest.raises(KeyError, match='tiny'):
        ViT(arch='tiny')
    with pytest.raises(KeyError, match='num_heads'):
        ViT(arch=dict(embed_dims=32, num_layers=2))


def test_drop_path_rises_linearly():
    vit = ViT(arch=dict(embed_dims=32, num_layers=5, num_heads=2), drop_path_rate=0.4)
    rates = [layer.drop_path.p for layer in vit.layers]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_pos_embed_slot_zero_is_added_everywhere():
    vit = ViT(arch=dict(embed_dims=32, num_layers=1, num_heads=2)).eval()
    x = torch.randn(1, 3, 256, 192)
    before, = vit(x)
    delta = torch.randn(32)  # not a constant: LayerNorm would cancel that
    with torch.no_grad():
        vit.pos_embed[:, 0] += delta
    after, = vit(x)
    assert (before - after).abs().max() > 1e-3  # slot 0 is used ...
    with torch.no_grad():  # ... exactly like adding it to the patch embedding bias
        vit.pos_embed[:, 0] -= delta
        vit.patch_embed.proj.bias += delta
    assert torch.allclose(vit(x)[0], after, atol=1e-5)


@pytest.mark.parametrize('with_cp', [True, 2])
def test_gradient_checkpointing_matches(with_cp):
    torch.manual_seed(0)
    vit = ViT(arch=dict(embed_dims=32, num_layers=3, num_heads=2))
    x = torch.randn(2, 3, 64, 48)
    out = vit(x)[0].square().sum()
    out.backward()
    grads = [p.grad.clone() for p in vit.parameters()]
    vit.zero_grad()
    vit.with_cp = with_cp
    out_cp = vit(x)[0].square().sum()
    out_cp.backward()
    assert torch.allclose(out, out_cp)
    for g, p in zip(grads, vit.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)


def test_partial_checkpointing_saves_less_for_backward():
    """with_cp=k checkpoints the first k blocks: saved activations fall with k."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 48)
    saved = []
    for k in (0, 2, 4):
        vit = ViT(arch=dict(embed_dims=32, num_layers=4, num_heads=2), with_cp=k)
        params = {p.data_ptr() for p in vit.parameters()}
        total = [0]

        def pack(t):
            if t.data_ptr() not in params:
                total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            vit(x)
        saved.append(total[0])
    assert saved[0] > saved[1] > saved[2]
    with pytest.raises(ValueError,
                       match=r'with_cp must be a bool or a number of blocks in \[0, 4\]'):
        ViT(arch=dict(embed_dims=32, num_layers=4, num_heads=2), with_cp=5)


def _step(vit):
    opt = torch.optim.AdamW([p for p in vit.parameters() if p.requires_grad], lr=1e-2)
    vit(torch.randn(2, 3, 64, 48))[0].square().mean().backward()
    opt.step()


@pytest.mark.parametrize('kwargs,frozen,trained', [
    (dict(freeze_attn=True), ['attn.', 'norm1.'], ['mlp.', 'norm2.', 'patch_embed', 'pos_embed']),
    # as the authors' _freeze_stages: freezing the FFNs freezes the embeddings too
    (dict(freeze_ffn=True), ['mlp.', 'norm2.', 'patch_embed', 'pos_embed'], ['attn.', 'norm1.']),
    (dict(frozen_stages=1), ['patch_embed', 'pos_embed', 'layers.0.'], ['layers.1.', 'last_norm']),
])
def test_partial_finetuning(kwargs, frozen, trained):
    """Frozen weights are bit-identical after an optimiser step (paper Table 6)."""
    torch.manual_seed(0)
    vit = ViT(arch=dict(embed_dims=32, num_layers=2, num_heads=2), **kwargs).train()
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    _step(vit)
    after = vit.state_dict()
    for name in before:
        if any(f in name for f in frozen):
            assert torch.equal(before[name], after[name]), name
        elif any(t in name for t in trained) and name.endswith('weight'):
            assert not torch.equal(before[name], after[name]), name
    for name in (n for n, m in vit.named_modules() if any(f in n + '.' for f in frozen)):
        assert not dict(vit.named_modules())[name].training, name
    assert vit.pos_embed.requires_grad == ('pos_embed' not in frozen)


def test_layer_norms_use_official_eps():
    vit = ViT(arch=dict(embed_dims=32, num_layers=2, num_heads=2))
    norms = [m for m in vit.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1 and all(m.eps == 1e-6 for m in norms)
