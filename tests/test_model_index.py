"""OpenMMLab model index: model-index.yml and one metafile per config folder, read by
`mim search vitpose_plugin` and by vitpose_plugin.apis.model_alias."""
import os
import subprocess
import sys

import pytest
import yaml

from helpers import CONFIGS, REPO, installed_package
from vitpose_plugin.apis import model_alias, plugin_models


def entries():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())['Import']
    models = []
    for meta in index:
        doc = yaml.safe_load((REPO / meta).read_text())
        assert meta.startswith('configs/') and (REPO / meta).parent.samefile(
            REPO / doc['Models'][0]['Config'].rsplit('/', 1)[0]), meta
        collections = {c['Name'] for c in doc['Collections']}
        for m in doc['Models']:
            assert m['In Collection'] in collections, m['Name']
            models.append(m)
    return models


def test_every_config_has_an_entry_and_every_entry_a_config():
    models = entries()
    configs = {str(p.relative_to(REPO)) for p in CONFIGS.rglob('*.py')}
    listed = [m['Config'] for m in models]
    assert sorted(listed) == sorted(configs)  # once each
    names = [m['Name'] for m in models]
    aliases = [a for m in models for a in m.get('Alias') or []]
    assert len(set(names + aliases)) == len(names) + len(aliases)
    for m in models:
        assert m['Name'] == m['Config'].rsplit('/', 1)[1][:-3]
        meta = m['Metadata']
        assert meta['Architecture'] and meta['Training Data']
        for result in m.get('Results') or []:
            assert result['Source'] and result['Metrics']['AP'] > 0  # whose figure it is
        assert str(m.get('Weights', 'https://')).startswith('https://')


@pytest.mark.parametrize('model', [m for m in entries() if 'codec' in open(
    REPO / m['Config']).read() or 'td-hm' in m['Name']], ids=lambda m: m['Name'])
def test_pose_entries_carry_measured_params_and_flops(model):
    meta = model['Metadata']
    assert meta['Parameters (M)'] > 0 and meta['FLOPs (G)'] > 0, model['Name']


def test_mim_search_lists_the_plugins_models():
    res = subprocess.run([sys.executable, '-m', 'mim', 'search', 'vitpose_plugin'],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    found = {line.split('config id:')[1].strip() for line in res.stdout.splitlines()
             if 'config id:' in line}
    assert found == {m['Name'] for m in entries()}


def test_mim_search_and_model_alias_from_an_installed_package(tmp_path):
    """A wheel of the checkout, installed: `mim search` from another folder lists every
    model, and model_alias gives config files inside the installed package."""
    site = installed_package()
    env = dict(os.environ, PYTHONPATH=str(site))
    mim = [sys.executable, '-c', 'import sys; from mim.cli import cli; sys.exit(cli())']
    res = subprocess.run(mim + ['search', 'vitpose_plugin'], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    found = {line.split('config id:')[1].strip() for line in res.stdout.splitlines()
             if 'config id:' in line}
    assert found == {m['Name'] for m in entries()}
    res = subprocess.run([sys.executable, '-c', 'import os; from vitpose_plugin.apis import '
                          "model_alias; c = model_alias('vitpose-b')[0]; "
                          'print(os.path.realpath(c), os.path.isfile(c))'],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    path, exists = res.stdout.split()
    assert exists == 'True' and path.startswith(str(site.resolve())), res.stdout + res.stderr


def test_aliases_resolve_to_the_plugins_configs_and_weights():
    config, weights = model_alias('vitpose-b')
    assert config.endswith('td-hm_vitpose-base-simple_8xb64-210e_coco-256x192.py')
    assert weights.endswith('td-hm_ViTPose-base-simple_8xb64-210e_coco-256x192-0b8234ea_20230407'
                            '.pth')
    assert model_alias('TransPose-H-A6')[1].endswith('tp_h_48_256x192_enc6_d96_h192_mh1.pth')
    assert all(k == k.lower() for k in plugin_models())
    with pytest.raises(KeyError, match='vitpose-l'):
        model_alias('vitpose-xl')


def test_mmpose_inferencer_takes_an_alias_through_model_alias(images):
    from mmpose.apis import MMPoseInferencer
    config, _ = model_alias('vitpose-s')
    inferencer = MMPoseInferencer(pose2d=config, pose2d_weights=None, det_model='whole_image',
                                  device='cpu')
    persons = next(inferencer(str(images / 'sunglasses.jpg')))['predictions'][0]
    assert len(persons) == 1 and len(persons[0]['keypoints']) == 17


def test_an_alias_offline_names_the_url_and_how_to_pass_a_local_file(tmp_path, monkeypatch):
    """Offline on any machine: nothing in the download cache, and every connection goes
    to a closed local port (the discard port)."""
    from mmpose.apis import MMPoseInferencer
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    for var in ('https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY'):
        monkeypatch.setenv(var, 'http://127.0.0.1:9')
    for var in ('no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(var, raising=False)
    config, url = model_alias('vitpose-b')
    with pytest.raises(Exception) as info:
        MMPoseInferencer(config, url, device='cpu')
    assert url in str(info.value) and 'local path' in str(info.value), str(info.value)
