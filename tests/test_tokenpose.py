"""TokenPose (keypoint tokens) and the truncated HRNet front end it shares with TransPose-H."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.models.backbones import HRNet
from mmpose.registry import MODELS

from helpers import CONFIGS, lifecycle, tiny_hrnet
from vitpose_plugin.models.backbones import TruncatedHRNet
from vitpose_plugin.models.heads import TokenPoseHead

TOKENPOSE = CONFIGS / 'tokenpose' / 'coco'
W32 = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ),
                num_channels=(64, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4),
                num_channels=(32, 64)),
    stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4),
                num_channels=(32, 64, 128)),
    stage4=dict(num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                num_channels=(32, 64, 128, 256)))


@pytest.mark.parametrize('num_stages', [1, 2, 3])
def test_truncated_hrnet_is_hrnet_up_to_its_last_stage(num_stages):
    """Loaded with a full HRNet's weights (same key names), the truncated net returns
    the full net's highest-resolution map after stage ``num_stages`` (stage 1: layer1)."""
    torch.manual_seed(0)
    full = HRNet(W32)
    full.init_weights()
    for m in full.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    full.eval()
    cut = TruncatedHRNet(W32, num_stages=num_stages)
    cut.eval()
    result = cut.load_state_dict(full.state_dict(), strict=False)
    assert result.missing_keys == []
    seen = {}
    layer = full.layer1 if num_stages == 1 else getattr(full, f'stage{num_stages}')
    layer.register_forward_hook(lambda m, i, o: seen.update(out=o))
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        full(x)
        ours, = cut(x)
    expected = seen['out'] if num_stages == 1 else seen['out'][0]
    assert ours.shape == (1, cut.out_channels, 32, 24)
    assert torch.allclose(ours, expected, atol=1e-5)
    # the last kept module fuses into the 1/4 branch only: no unused parameters
    if num_stages == 3:
        assert len(cut.stage3[-1].fuse_layers) == 1


def test_truncated_hrnet_rejects_a_fourth_stage():
    with pytest.raises(ValueError, match='num_stages=4'):
        TruncatedHRNet(W32, num_stages=4)


def authors_tokenpose(head, feat, depth_per_stage):
    """Independent functional transcription of the authors' TokenPose forward (einops
    patch order, sine position re-added before every layer but the first of each stage,
    keypoint tokens of each stage concatenated) using ``head``'s weights."""
    ph, pw = head.patch_size
    b, c, hh, ww = feat.shape
    h, w = hh // ph, ww // pw
    patches = torch.stack([feat[:, :, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw]
                           .permute(0, 2, 3, 1).reshape(b, -1)
                           for i in range(h) for j in range(w)], dim=1)
    x = F.linear(patches, head.patch_embed.weight, head.patch_embed.bias)
    d = x.shape[-1]
    ys = torch.arange(1, h + 1).float() / (h + 1e-6) * 2 * math.pi
    xs = torch.arange(1, w + 1).float() / (w + 1e-6) * 2 * math.pi
    dim_t = 10000**(2 * (torch.arange(d // 2) // 2) / (d // 2))
    pe = torch.zeros(h, w, d)
    for i in range(h):
        for j in range(w):
            for t in range(d // 2):
                f = math.sin if t % 2 == 0 else math.cos
                pe[i, j, t] = f(ys[i] / dim_t[t])
                pe[i, j, d // 2 + t] = f(xs[j] / dim_t[t])
    pe = pe.reshape(1, h * w, d)
    k = head.keypoint_tokens.shape[1]
    x = torch.cat([head.keypoint_tokens.expand(b, -1, -1), x + pe], 1)
    outs = []
    for idx, blk in enumerate(head.layers):
        if idx % depth_per_stage:
            x = torch.cat([x[:, :k], x[:, k:] + pe], 1)
        y = blk.norm1(x)
        qkv = F.linear(y, blk.qkv.weight).chunk(3, -1)
        q, kk, v = (t.reshape(b, -1, blk.num_heads, d // blk.num_heads).transpose(1, 2)
                    for t in qkv)
        attn = torch.einsum('bhid,bhjd->bhij', q, kk) * blk.scale
        out = torch.einsum('bhij,bhjd->bhid', attn.softmax(-1), v)
        x = x + blk.proj(out.transpose(1, 2).reshape(b, -1, d))
        x = x + blk.ffn(blk.norm2(x))
        if (idx + 1) % depth_per_stage == 0:
            outs.append(x[:, :k])
    return head.mlp_head(torch.cat(outs, -1)).reshape(b, k, *head.heatmap_size[::-1])


@pytest.mark.parametrize('num_stages,hidden,head_scale', [(1, 96, False), (3, None, True)])
def test_tokenpose_head_matches_the_authors_forward(num_stages, hidden, head_scale):
    torch.manual_seed(0)
    head = TokenPoseHead(in_channels=8, out_channels=5, heatmap_size=(12, 16),
                         patch_size=(4, 3), embed_dims=32, depth=3 * num_stages,
                         num_heads=4, num_stages=num_stages, hidden_dims=hidden,
                         head_scale=head_scale)
    head.init_weights()
    head.eval()
    feat = torch.randn(2, 8, 16, 12)
    with torch.no_grad():
        ours = head((feat, ))
        ref = authors_tokenpose(head, feat, 3)
    assert ours.shape == (2, 5, 16, 12)
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()
    attn = head.last_attention
    assert attn.shape == (2, 5 + 16, 5 + 16)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 21), atol=1e-5)


def test_tokenpose_head_names_a_patch_size_that_does_not_fit():
    head = TokenPoseHead(in_channels=3, out_channels=2, heatmap_size=(4, 4), patch_size=(4, 3),
                         embed_dims=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match='not divisible into 4x3 patches'):
        head((torch.randn(1, 3, 16, 10), ))


def configs():
    return sorted(p.name for p in TOKENPOSE.glob('*.py'))


# (parameters in M) published for each variant: TokenPose paper / official code
PAPER_PARAMS = {'s-v1': 6.6, 'b': 13.5, 'l-d24': 27.5}


@pytest.mark.parametrize('name', configs())
def test_tokenpose_configs_build_and_run(name):
    init_default_scope('mmpose')
    cfg = Config.fromfile(str(TOKENPOSE / name))
    model = MODELS.build(cfg.model)
    model.eval()
    w, h = cfg.codec['input_size']
    with torch.no_grad():
        out = model._forward(torch.randn(1, 3, h, w))
    assert out.shape == (1, 17, h // 4, w // 4)
    variant = name.split('tokenpose-')[1].split('_')[0]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    if variant in PAPER_PARAMS and '256x192' in name:
        assert abs(params - PAPER_PARAMS[variant]) / PAPER_PARAMS[variant] < 0.01, params
    if '256x192' in name:
        # other input sizes run; the MLP fixes the heatmap size
        with torch.no_grad():
            out = model._forward(torch.randn(1, 3, 384, 288))
        assert out.shape == (1, 17, 64, 48)


def test_tokenpose_lifecycle(coco_dir, tmp_path, images):
    """Trains (the loss falls), saves, reloads strictly, resumes, infers, tests."""
    cfg = Config.fromfile(str(TOKENPOSE / 'td-hm_tokenpose-b_4xb32-300e_coco-256x192.py'))
    cfg.model.backbone.init_cfg = None
    channels = tiny_hrnet(cfg.model.backbone)
    cfg.model.head.update(in_channels=channels, embed_dims=32, depth=2, num_heads=2,
                          hidden_dims=64)
    lifecycle(cfg, coco_dir, tmp_path / 'work', images / 'sunglasses.jpg')


def test_tokenpose_s_starts_as_the_authors_do():
    """Trained from scratch: convolutions N(0, 0.001), BatchNorm weight 1 and bias 0 (the
    authors' init_weights), not PyTorch's defaults nor ImageNet HRNet weights."""
    cfg = Config.fromfile(str(TOKENPOSE / 'td-hm_tokenpose-s-v1_4xb32-300e_coco-256x192.py'))
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    convs = [m.weight for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([w.flatten() for w in convs])
    assert len(convs) >= 15 and abs(weights.std().item() - 0.001) < 5e-5
    assert abs(weights.mean().item()) < 5e-5
    for m in model.backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
