"""A checkpoint's text never runs: MMEngine's ``--resume`` executes ``meta['config']`` as
Python, so the loader keeps only its data; trust and the download cache are per whole
URL, and ``VITPOSE_TRUSTED_CHECKPOINTS`` keeps URL entries whole."""
import functools
import http.server
import os
import threading
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from helpers import REPO, on_shared_coco, tiny_config
from vitpose_plugin.checkpoint import TRUST_ENV, UntrustedCheckpointError, trusted_checkpoints
from vitpose_plugin.checkpoint.allowlist import inert_config_text
from vitpose_plugin.checkpoint.safe_load import cached_path, parse_trust_entries

CONFIG = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'


def _payload(marker) -> str:
    return (f"\nimport os\nos.system('touch {marker}')\n"
            f"gpu_ids = [__import__('os').system('touch {marker}')]\n"
            "custom_imports = dict(imports=['antigravity'])\n")


def test_inert_config_text_keeps_data_and_drops_code(tmp_path):
    marker = tmp_path / 'ran'
    text = Config(dict(model=dict(type='X', sizes=(1, 2), lr=-3e-4, on=True, x=None),
                       gpu_ids=[0, 1], name='run')).pretty_text + _payload(marker)
    inert = inert_config_text(text)
    for code in ('import', 'system', '__import__', 'antigravity', 'custom_imports'):
        assert code not in inert
    cfg = Config.fromstring(inert, '.py')  # what MMEngine's resume does with it
    assert not marker.exists()
    assert cfg.gpu_ids == [0, 1] and cfg.name == 'run'
    assert cfg.model.sizes == (1, 2) and cfg.model.lr == -3e-4 and cfg.model.x is None
    # MMEngine rewrites {{$VAR:default}} in the raw text before running it (the default is
    # a regex and a replacement): such values could splice code outside their quotes
    splice = ("a = dict(x='{{$NOPE:\\'*__import__(\\'os\\').system(\\'touch %s\\')*\\'?}}')\n"
              "b = '{{$NOPE:x}}'\nc = '{{ fileDirname }}'\nfilename = 'x'\nkept = 1\n" % marker)
    assert inert_config_text(splice) == 'kept = 1\n'
    assert inert_config_text('def f(:') is None
    assert inert_config_text('x = ' + '[' * 10000 + ']' * 10000) is None  # too deep
    assert inert_config_text('x = float("inf")\ny = 1e999\n') is None


def test_resume_never_runs_the_stored_config(coco_dir, tmp_path):
    """A real runner checkpoint whose config text carries code: --resume continues the
    run, the code does not run, and the converter does not carry it on."""
    marker = tmp_path / f'ran_{uuid.uuid4().hex}'
    cfg = on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'first')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10**6)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False)
    cfg.train_dataloader.batch_size = 2
    Runner.from_cfg(cfg.copy()).train()
    saved = tmp_path / 'first' / 'iter_1.pth'
    with trusted_checkpoints(str(saved)):  # our own file: read it whole, then taint it
        ckpt = _load_checkpoint(str(saved))
    # MMEngine writes the config as meta['cfg'] and runs meta['config'] on resume
    ckpt['meta']['config'] = ckpt['meta']['cfg'] + _payload(marker)
    crafted = tmp_path / 'crafted.pth'
    torch.save(ckpt, crafted)

    cfg = on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'resumed')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=10**6)
    cfg.train_dataloader.batch_size = 2
    cfg.load_from, cfg.resume = str(crafted), True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2  # resumed at 1, trained one more step
    assert not marker.exists()

    from tools.convert_checkpoint import main as convert
    out = tmp_path / 'converted.pth'
    convert([str(crafted), str(out)])
    meta = _load_checkpoint(str(out))['meta']
    assert 'system' not in meta['config'] and 'import' not in meta['config']
    assert Config.fromstring(meta['config'], '.py').model.type == 'StrictTopdownPoseEstimator'
    assert not marker.exists()


def test_trust_entries_keep_urls_whole():
    entries = parse_trust_entries('/a/x.pth:http://host/y.pth:https://h:8080/z/w.pth:rel.pth:*')
    assert entries == {'/a/x.pth', 'http://host/y.pth', 'https://h:8080/z/w.pth', 'rel.pth', '*'}
    assert 'http' not in parse_trust_entries('https://host/b.pth')


@pytest.fixture
def two_servers(tmp_path):
    """Two local HTTP servers, each serving its own ``epoch_210.pth``."""
    servers, urls = [], []
    for name in ('a', 'b'):
        folder = tmp_path / name
        folder.mkdir()
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls.append((folder, f'http://127.0.0.1:{server.server_address[1]}/epoch_210.pth'))
    yield urls
    for server in servers:
        server.shutdown()


class Harmless:
    def __init__(self, value):
        self.value = value


def test_urls_with_the_same_file_name_never_share_a_download(two_servers, tmp_path,
                                                             monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    (folder_a, url_a), (folder_b, url_b) = two_servers
    torch.save({'state_dict': {'w': torch.full((2, ), 1.0)}}, folder_a / 'epoch_210.pth')
    torch.save({'state_dict': {'w': torch.full((2, ), 2.0)}}, folder_b / 'epoch_210.pth')
    load = functools.partial(CheckpointLoader.load_checkpoint, map_location='cpu')
    assert load(url_a)['state_dict']['w'][0] == 1.0
    assert load(url_b)['state_dict']['w'][0] == 2.0
    assert cached_path(url_a) != cached_path(url_b)

    # a refused file from A, then trust for B's URL: B's own file is what gets unpickled
    torch.save({'meta': Harmless('a')}, folder_a / 'evil.pth')
    torch.save({'meta': Harmless('b')}, folder_b / 'evil.pth')
    evil_a, evil_b = (u.replace('epoch_210', 'evil') for u in (url_a, url_b))
    with pytest.raises(UntrustedCheckpointError, match=evil_a):
        load(evil_a)
    monkeypatch.setenv(TRUST_ENV, os.pathsep.join([str(REPO / 'nothing.pth'), evil_b]))
    assert load(evil_b)['meta'].value == 'b'
    with pytest.raises(UntrustedCheckpointError):  # A is still refused
        load(evil_a)


def test_offline_download_names_the_url_and_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    url = 'http://127.0.0.1:9/nowhere/vitpose-b.pth'  # the discard port: refused at once
    with pytest.raises(OSError) as info:
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    message = str(info.value)
    assert url in message and 'local path' in message and '--random-weights' in message
    assert not os.path.exists(cached_path(url))
