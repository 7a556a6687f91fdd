"""The TransPose and TokenPose authors' checkpoints load strictly, with the outputs of the
same weights in the plugin's layout. The state dicts here are written in the authors' key
layout and shapes (yangsenius/TransPose, leeyegy/TokenPose), including the fixed sine
table they store as a parameter, computed with their formula."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.apis import init_model
from mmpose.registry import MODELS

from helpers import CONFIGS, run_main, tiny_hrnet


def authors_sine(d, h, w):
    """The authors' table: positions (i + 1) / (size + 1e-6) * 2 pi, rows in channels
    [0, d/2), columns in [d/2, d), sin / cos interleaved; (h*w, d)."""
    y = (torch.arange(h, dtype=torch.float32) + 1) / (h + 1e-6) * 2 * math.pi
    x = (torch.arange(w, dtype=torch.float32) + 1) / (w + 1e-6) * 2 * math.pi
    dim_t = 10000**(2 * (torch.arange(d // 2) // 2) / (d // 2))
    py, px = y[:, None, None] / dim_t, x[None, :, None] / dim_t
    py = torch.stack([py[..., 0::2].sin(), py[..., 1::2].cos()], -1).flatten(2)
    px = torch.stack([px[..., 0::2].sin(), px[..., 1::2].cos()], -1).flatten(2)
    return torch.cat([py.expand(h, w, -1), px.expand(h, w, -1)], -1).flatten(0, 1)


def transpose_layout(sd, grid, d):
    """The plugin's TransPose state dict in the authors' keys."""
    out = {'pos_embedding': authors_sine(d, *grid)[:, None]}  # (h*w, 1, d)
    ffn = {'ffn.0.': 'linear1.', 'ffn.3.': 'linear2.', 'attn.': 'self_attn.'}
    for k, v in sd.items():
        if k.startswith('backbone.'):
            out[k[len('backbone.'):]] = v
        elif k.startswith('neck.reduce.'):
            out[k[len('neck.'):]] = v
        elif k.startswith('neck.layers.'):
            i, rest = k[len('neck.layers.'):].split('.', 1)
            for ours, theirs in ffn.items():
                if rest.startswith(ours):
                    rest = theirs + rest[len(ours):]
            out[f'global_encoder.layers.{i}.{rest}'] = v
        else:  # head.deconv_layers / head.final_layer
            out[k[len('head.'):]] = v
    return out


def tokenpose_layout(sd, grid, d, stages=1, cnn='features.'):
    """The plugin's TokenPose state dict in the authors' keys."""
    t = 'features.' if cnn == 'features.' else 'transformer.'
    out = {t + 'pos_embedding': authors_sine(d, *grid)[None]}  # (1, h*w, d)
    names = {'norm1.': '0.fn.norm.', 'qkv.': '0.fn.fn.to_qkv.', 'proj.': '0.fn.fn.to_out.0.',
             'norm2.': '1.fn.norm.', 'ffn.0.': '1.fn.fn.net.0.', 'ffn.3.': '1.fn.fn.net.3.'}
    depth = 1 + max(int(k.split('.')[2]) for k in sd if k.startswith('head.layers.'))
    for k, v in sd.items():
        if k.startswith('backbone.'):
            out[cnn + k[len('backbone.'):]] = v
        elif k == 'head.keypoint_tokens':
            out[t + 'keypoint_token'] = v
        elif k.startswith('head.patch_embed.'):
            out[t + 'patch_to_embedding.' + k.rsplit('.', 1)[1]] = v
        elif k.startswith('head.mlp_head.'):
            out[t + k[len('head.'):]] = v
        elif k.startswith('head.layers.'):
            i, rest = k[len('head.layers.'):].split('.', 1)
            for ours, theirs in names.items():
                if rest.startswith(ours):
                    rest = theirs + rest[len(ours):]
            i = int(i)
            if stages > 1:
                s, j = divmod(i, depth // stages)
                out[f'{t}transformer{s + 1}.layers.{j}.{rest}'] = v
            else:
                out[f'{t}transformer.layers.{i}.{rest}'] = v
    return out


def tiny(family, name):
    cfg = Config.fromfile(str(CONFIGS / family / 'coco' / name))
    cfg.model.backbone.init_cfg = None
    if 'extra' in cfg.model.backbone:
        channels = tiny_hrnet(cfg.model.backbone)
    if family == 'transpose':
        if cfg.model.backbone.type != 'ResNet':
            cfg.model.neck.in_channels = channels
        cfg.model.neck.update(embed_dims=32, ffn_dims=64)
        cfg.model.head.in_channels = 32
    else:
        stages = cfg.model.head.get('num_stages', 1)
        cfg.model.head.update(embed_dims=32, depth=2 * stages, num_heads=2)
        if cfg.model.backbone.type != 'ImageAsFeature':
            cfg.model.head.in_channels = channels
        if cfg.model.head.hidden_dims:
            cfg.model.head.hidden_dims = 64
    return cfg


CASES = {
    'transpose-r': ('transpose', 'td-hm_transpose-r-a3_8xb32-230e_coco-256x192.py',
                    lambda sd: transpose_layout(sd, (32, 24), 32)),
    'transpose-h': ('transpose', 'td-hm_transpose-h-s_8xb32-230e_coco-256x192.py',
                    lambda sd: transpose_layout(sd, (64, 48), 32)),
    'tokenpose-s': ('tokenpose', 'td-hm_tokenpose-s-v1_4xb32-300e_coco-256x192.py',
                    lambda sd: tokenpose_layout(sd, (16, 16), 32)),
    'tokenpose-b': ('tokenpose', 'td-hm_tokenpose-b_4xb32-300e_coco-256x192.py',
                    lambda sd: tokenpose_layout(sd, (16, 16), 32, cnn='pre_feature.')),
    'tokenpose-l': ('tokenpose', 'td-hm_tokenpose-l-d24_4xb16-300e_coco-256x192.py',
                    lambda sd: tokenpose_layout(sd, (16, 16), 32, 3, cnn='pre_feature.')),
    'tokenpose-t': ('tokenpose', 'td-hm_tokenpose-t_4xb32-300e_coco-256x192.py',
                    lambda sd: tokenpose_layout(sd, (16, 16), 32, cnn='transformer.')),
}


def _model(case):
    family, name, _ = CASES[case]
    cfg = tiny(family, name)
    init_default_scope('mmpose')
    torch.manual_seed(0)
    return cfg, MODELS.build(cfg.model).eval()


@pytest.mark.parametrize('case', list(CASES))
def test_authors_checkpoint_loads_strictly_with_the_same_heatmaps(case, tmp_path):
    cfg, model = _model(case)
    authors = CASES[case][2](model.state_dict())
    assert not any(k.startswith(('head.', 'neck.', 'backbone.')) for k in authors)
    # their released files are bare state dicts; training checkpoints nest them with a
    # DataParallel 'module.' prefix
    torch.save(authors, tmp_path / 'release.pth')
    torch.save({'state_dict': {'module.' + k: v for k, v in authors.items()}},
               tmp_path / 'checkpoint.pth')
    cfg.dump(str(tmp_path / 'cfg.py'))
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        want = model._forward(x)
        for path in ('release.pth', 'checkpoint.pth'):
            loaded = init_model(str(tmp_path / 'cfg.py'), str(tmp_path / path), device='cpu')
            assert torch.equal(loaded._forward(x), want), path


def test_authors_checkpoint_through_the_convert_tool(tmp_path):
    cfg, model = _model('transpose-r')
    torch.save(CASES['transpose-r'][2](model.state_dict()), tmp_path / 'tp.pth')
    cfg.dump(str(tmp_path / 'cfg.py'))
    # in this process; the tool's command line: test_checkpoint_io.py
    out = run_main('tools/convert_checkpoint.py', tmp_path / 'tp.pth',
                   tmp_path / 'plugin.pth', '--config', tmp_path / 'cfg.py')
    assert "converted the TransPose authors' layout" in out
    assert 'fixed sine table of a 32x24 grid' in out
    loaded = init_model(str(tmp_path / 'cfg.py'), str(tmp_path / 'plugin.pth'), device='cpu')
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_learned_position_encoding_is_refused(tmp_path):
    cfg, model = _model('tokenpose-s')
    authors = CASES['tokenpose-s'][2](model.state_dict())
    authors['features.pos_embedding'] = torch.randn_like(authors['features.pos_embedding'])
    torch.save(authors, tmp_path / 'learned.pth')
    with pytest.raises(ValueError, match='features.pos_embedding .* learned position'):
        init_model(cfg, str(tmp_path / 'learned.pth'), device='cpu')


def test_the_authors_table_is_the_plugins_to_float_precision():
    """They normalise by size + 1e-6, the plugin by size: the tables differ by < 1e-6,
    far inside the 1e-5 the loader accepts and far from any learned table."""
    from vitpose_plugin.models.utils import sine_position_encoding
    for d, h, w in ((256, 32, 24), (96, 64, 48), (192, 16, 16)):
        assert (authors_sine(d, h, w) - sine_position_encoding(d, h, w)).abs().max() < 1e-6
