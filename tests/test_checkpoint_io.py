import subprocess
import sys

import numpy as np
import pytest
import reference_vitpose as ref
import torch
from mmengine.config import ConfigDict
from mmengine.runner.checkpoint import _load_checkpoint
from mmpose.apis import init_model

from helpers import REPO, TINY_ARCH, run_main, tiny_config
from vitpose_plugin.models.pose_estimators.strict_topdown import CheckpointMismatchError

CLASSIC = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'


def _save(path, sd):
    torch.save({'state_dict': sd}, path)
    return str(path)


@pytest.mark.parametrize('layout', ['official', 'mmpretrain'])
def test_convert_tool_round_trip(tmp_path, layout):
    """The official layout goes through the command line; the rest calls the same
    ``main(argv)`` in this process."""
    sd = ref.random_checkpoint(layout, dims=TINY_ARCH['embed_dims'])
    src = _save(tmp_path / 'src.pth', sd)
    dst = tmp_path / 'dst.pth'
    if layout == 'official':
        out = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'),
                              src, str(dst)], capture_output=True, text=True, check=True).stdout
    else:
        out = run_main('tools/convert_checkpoint.py', src, dst)
    assert f'converted the {layout} ViT layout' in out
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert 'backbone.layers.1.mlp.fc2.weight' in converted
    assert 'head.final_layer.weight' in converted
    assert converted['backbone.pos_embed'].shape == (1, 16 * 12 + 1, TINY_ARCH['embed_dims'])
    assert not any(k.startswith(('backbone.blocks', 'keypoint_head', 'backbone.cls_token'))
                   for k in converted)
    # the converted file is a fixed point and gives the source's heatmaps
    again = tmp_path / 'again.pth'
    assert 'already in the plugin layout' in run_main('tools/convert_checkpoint.py', dst, again)
    img = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        a = init_model(tiny_config(CLASSIC), src, device='cpu')._forward(img)
        b = init_model(tiny_config(CLASSIC), str(again), device='cpu')._forward(img)
    assert torch.equal(a, b)


def test_convert_tool_rejects_non_vit(tmp_path):
    src = _save(tmp_path / 'resnet.pth', {'conv1.weight': torch.zeros(1)})
    with pytest.raises(SystemExit, match=r'resnet\.pth: no ViT backbone'):
        run_main('tools/convert_checkpoint.py', src, tmp_path / 'x.pth')
    assert not (tmp_path / 'x.pth').exists()


def _mismatch(tmp_path, sd):
    with pytest.raises(CheckpointMismatchError) as info:
        init_model(tiny_config(CLASSIC), _save(tmp_path / 'bad.pth', sd), device='cpu')
    return str(info.value)


def test_strict_missing_key_is_named(tmp_path):
    sd = ref.random_checkpoint('official', dims=TINY_ARCH['embed_dims'])
    del sd['backbone.blocks.1.mlp.fc2.bias']
    msg = _mismatch(tmp_path, sd)
    assert 'missing keys (1)' in msg and 'backbone.layers.1.mlp.fc2.bias' in msg


def test_strict_unexpected_key_is_named(tmp_path):
    sd = ref.random_checkpoint('official', dims=TINY_ARCH['embed_dims'])
    sd['keypoint_head.extra_conv.weight'] = torch.zeros(3)
    msg = _mismatch(tmp_path, sd)
    assert 'unexpected keys (1)' in msg and 'head.extra_conv.weight' in msg


def test_strict_shape_mismatch_is_named(tmp_path):
    sd = ref.random_checkpoint('official', dims=TINY_ARCH['embed_dims'], num_kpts=14)
    msg = _mismatch(tmp_path, sd)
    assert 'head.final_layer.weight: checkpoint (14, 32, 1, 1) vs model (17, 32, 1, 1)' in msg
    assert 'head.final_layer.bias: checkpoint (14,) vs model (17,)' in msg


def test_strict_wrong_depth(tmp_path):
    sd = ref.random_checkpoint('mmpretrain', dims=TINY_ARCH['embed_dims'], depth=3)
    msg = _mismatch(tmp_path, sd)
    assert 'backbone.layers.2.attn.qkv.weight' in msg and 'unexpected' in msg


def test_runner_style_checkpoint_loads_despite_weights_only(tmp_path):
    """torch >= 2.6 refuses pickled objects by default; MMEngine files have them."""
    path = tmp_path / 'epoch_1.pth'
    torch.save({'meta': {'cfg': ConfigDict(a=1), 'seed': np.int64(3)},
                'state_dict': {'w': torch.ones(2)}}, path)
    with pytest.raises(Exception):
        torch.load(path)  # torch's own default refuses it
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['cfg'].a == 1 and torch.equal(ckpt['state_dict']['w'], torch.ones(2))


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))
