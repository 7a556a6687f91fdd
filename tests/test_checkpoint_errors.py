"""Every bad checkpoint gets an error that names the file (and the key or value) and says
what is wrong; only a refused global produces the "trust this file" message; files that
merely look unusual (safetensors named .pth, a plugin-layout .safetensors beside an
unrelated config.json) load."""
import json
import os
import zipfile

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint
from mmpose.apis import init_model
from safetensors.torch import save_file

from helpers import tiny_config
from vitpose_plugin.checkpoint import TRUST_ENV, UntrustedCheckpointError
from vitpose_plugin.checkpoint.allowlist import CheckpointError

CONFIG = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
HF_KEY = 'backbone.embeddings.patch_embeddings.projection.weight'


@pytest.fixture(scope='module')
def tiny_state():
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    torch.manual_seed(0)
    return MODELS.build(tiny_config(CONFIG).model).state_dict()


def _refused_as(path, *words, loader=_load_checkpoint):
    with pytest.raises(CheckpointError) as info:
        loader(str(path))
    message = str(info.value)
    assert str(path) in message and TRUST_ENV not in message, message
    for word in words:
        assert word in message, message
    return message


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('these are not weights\n')
    _refused_as(text, 'not a checkpoint', "b'these ar")
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    _refused_as(empty, 'empty')


def test_truncated_and_corrupt_files(tmp_path):
    weights = {'state_dict': {'w': torch.arange(1000.)}}
    legacy = tmp_path / 'legacy.pth'
    torch.save(weights, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:60])
    _refused_as(legacy, 'truncated')

    archive = tmp_path / 'archive.pth'
    torch.save(weights, archive)
    whole = archive.read_bytes()
    archive.write_bytes(whole[:len(whole) // 2])
    _refused_as(archive, 'corrupt or truncated zip archive')

    # a complete archive whose pickle is garbage: not a "refused global"
    corrupt = tmp_path / 'corrupt.pth'
    torch.save(weights, corrupt)
    with zipfile.ZipFile(corrupt) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    pkl = next(n for n in entries if n.endswith('data.pkl'))
    entries[pkl] = b'\x80\x02' + b'\xff' * 40
    with zipfile.ZipFile(corrupt, 'w') as z:
        for name, data in entries.items():
            z.writestr(name, data)
    _refused_as(corrupt, 'not a valid checkpoint')

    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes((20).to_bytes(8, 'little') + b'{"w": [1, 2' + b' ' * 30)
    _refused_as(bad, 'not a valid safetensors file')


def test_safetensors_named_pth_loads(tmp_path):
    path = tmp_path / 'weights.pth'
    save_file({'w': torch.arange(4.)}, path)
    assert torch.equal(_load_checkpoint(str(path))['state_dict']['w'], torch.arange(4.))


def test_one_token_pos_embed_names_file_and_key(tmp_path, tiny_state):
    state = dict(tiny_state)
    state['backbone.pos_embed'] = torch.zeros(1, 1, state['backbone.pos_embed'].shape[-1])
    path = tmp_path / 'one_token.pth'
    torch.save({'state_dict': state}, path)
    message = _refused_as(path, 'backbone.pos_embed', '0 patch positions',
                          loader=lambda p: init_model(tiny_config(CONFIG), p, device='cpu'))
    assert 'min()' not in message


def _hf_folder(folder, config, weights=None):
    folder.mkdir()
    save_file(weights or {HF_KEY: torch.zeros(4, 3, 16, 16)}, folder / 'model.safetensors')
    (folder / 'config.json').write_text(config if isinstance(config, str) else
                                        json.dumps(config))
    return folder


@pytest.mark.parametrize('config,named', [
    ([1, 2], 'expected a JSON object, got a list'),
    ({'model_type': 'vitpose', 'backbone_config': 'vit-b'}, 'backbone_config must be an object'),
    ({'model_type': 'vitpose', 'backbone_config': {'num_experts': '6'}},
     'backbone_config.num_experts'),
    ({'model_type': 'vitpose', 'id2label': 17}, 'id2label must be an object'),
    ({'model_type': 'vitpose', 'backbone_config': {'hidden_act': 'relu'}}, "'relu'"),
    ({'model_type': 'vitpose', 'backbone_config': {'patch_size': [16]}}, 'patch_size'),
    ('{"a": ' * 100000 + '1' + '}' * 100000, 'nested too deeply'),
], ids=['list', 'string-backbone', 'string-experts', 'int-id2label', 'hidden-act', 'patch',
        'deep'])
def test_bad_transformers_config_names_file_and_field(tmp_path, config, named):
    folder = _hf_folder(tmp_path / 'hf', config)
    message = _refused_as(folder / 'config.json', named,
                          loader=lambda p: _load_checkpoint(str(folder)))
    assert 'config.json' in message


def test_transformers_folder_missing_a_weight_names_it(tmp_path, tiny_state):
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    from vitpose_plugin.checkpoint.hf_vitpose import to_transformers, transformers_config
    init_default_scope('mmpose')
    model = MODELS.build(tiny_config(CONFIG).model)
    weights = to_transformers(model.state_dict())
    del weights['backbone.encoder.layer.1.attention.attention.key.weight']
    config = dict(transformers_config(model), model_type='vitpose')
    folder = _hf_folder(tmp_path / 'hf', config, weights)
    _refused_as(folder, 'backbone.encoder.layer.1.attention.attention.key.weight',
                loader=lambda p: init_model(tiny_config(CONFIG), p, device='cpu'))


def test_transformers_layer_norm_eps_is_applied(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    from vitpose_plugin.checkpoint.hf_vitpose import to_transformers, transformers_config
    init_default_scope('mmpose')
    model = MODELS.build(tiny_config(CONFIG).model)
    config = transformers_config(model)
    config['backbone_config']['layer_norm_eps'] = 1e-12
    folder = _hf_folder(tmp_path / 'hf', config, to_transformers(model.state_dict()))
    loaded = init_model(tiny_config(CONFIG), str(folder), device='cpu')
    eps = {m.eps for m in loaded.backbone.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == {1e-12}


def test_plugin_layout_safetensors_ignores_unrelated_config_json(tmp_path, tiny_state,
                                                                monkeypatch):
    (tmp_path / 'config.json').write_text(json.dumps({'some': 'other tool'}))
    save_file(dict(tiny_state), tmp_path / 'model.safetensors')
    model = init_model(tiny_config(CONFIG), str(tmp_path / 'model.safetensors'), device='cpu')
    assert torch.equal(model.state_dict()['backbone.pos_embed'], tiny_state['backbone.pos_embed'])
    monkeypatch.chdir(tmp_path)  # the bare file name: its folder is the working directory
    init_model(tiny_config(CONFIG), 'model.safetensors', device='cpu')


def _vitpose_plus(heads):
    """An official-layout ViTPose+ state dict: one block with two experts, and ``heads``."""
    sd = {'backbone.blocks.0.mlp.fc2.weight': torch.zeros(6, 24),
          'backbone.blocks.0.mlp.fc2.bias': torch.zeros(6),
          'backbone.blocks.0.mlp.experts.0.weight': torch.ones(2, 24),
          'backbone.blocks.0.mlp.experts.0.bias': torch.ones(2),
          'backbone.blocks.0.mlp.experts.1.weight': torch.ones(2, 24),
          'backbone.blocks.0.mlp.experts.1.bias': torch.ones(2)}
    for name in heads:
        sd[f'{name}.weight'] = torch.zeros(17, 8, 1, 1)
    return {'state_dict': sd}


def test_vitpose_plus_split_names_bad_heads_and_writes_all_or_nothing(tmp_path):
    from tools.split_vitpose_plus import main as split
    src = tmp_path / 'plus.pth'
    torch.save(_vitpose_plus(['keypoint_head.final_layer',
                              'associate_keypoint_heads.9.final_layer']), src)
    with pytest.raises(SystemExit, match=r'associate_keypoint_heads\.9.*2 datasets'):
        split([str(src), str(tmp_path / 'out'), '--datasets', 'coco', 'aic'])
    # the second dataset's head has no final layer: nothing may be written
    torch.save(_vitpose_plus(['keypoint_head.final_layer',
                              'associate_keypoint_heads.0.deconv_layers.0']), src)
    with pytest.raises(SystemExit, match='aic'):
        split([str(src), str(tmp_path / 'out'), '--datasets', 'coco', 'aic'])
    assert not (tmp_path / 'out').exists() or os.listdir(tmp_path / 'out') == []
    torch.save(_vitpose_plus(['keypoint_head.final_layer',
                              'associate_keypoint_heads.0.final_layer']), src)
    split([str(src), str(tmp_path / 'out'), '--datasets', 'coco', 'aic'])
    assert sorted(os.listdir(tmp_path / 'out')) == ['plus_aic.pth', 'plus_coco.pth']


class Unknown:
    """A type no allowlist knows."""


def test_only_a_refused_global_asks_for_trust(tmp_path):
    path = tmp_path / 'unknown.pth'
    torch.save({'meta': Unknown()}, path)
    with pytest.raises(UntrustedCheckpointError) as info:
        _load_checkpoint(str(path))
    assert 'Unknown' in str(info.value) and TRUST_ENV in str(info.value)


@pytest.mark.parametrize('content,named', [
    ({'annotations': []}, "'images'"), ([1, 2], 'not a COCO keypoint json'),
    ('{"images": [', 'not a JSON file')], ids=['no-images', 'list', 'truncated'])
def test_int8_calibration_json_without_images_names_it(tmp_path, content, named):
    from vitpose_plugin.deploy.int8 import calibration_crops
    path = tmp_path / 'calib.json'
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError) as info:
        next(calibration_crops(None, str(path)))
    assert str(path) in str(info.value) and named in str(info.value)


def test_transformers_config_with_a_huge_integer_names_the_file(tmp_path):
    folder = _hf_folder(tmp_path / 'hf', '{"model_type": "vitpose", "x": ' + '9' * 5000 + '}')
    _refused_as(folder / 'config.json', 'not a JSON config',
                loader=lambda p: _load_checkpoint(str(folder)))
