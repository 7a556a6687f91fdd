"""Loading never runs code from a checkpoint: every entry point refuses a file whose
pickle calls a function, the project's own runner checkpoints load without any opt-in,
and full unpickling happens only for files the user names as trusted."""
import functools
import http.server
import os
import subprocess
import threading
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
from mmpose.apis import init_model

from helpers import MIM, REPO, on_shared_coco, run_demo, tiny_config
from vitpose_plugin.checkpoint import TRUST_ENV, UntrustedCheckpointError, trusted_checkpoints
from vitpose_plugin.checkpoint.safe_load import cached_path

CONFIG = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'


class _Payload:
    """Unpickles to ``os.system(command)``."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


class Harmless:
    """A non-tensor type no allowlist knows (for the opt-in)."""

    def __init__(self, value):
        self.value = value


@pytest.fixture
def crafted(tmp_path):
    """A pose checkpoint whose ``meta`` runs ``touch MARKER`` when fully unpickled."""
    marker = tmp_path / f'pwned_{uuid.uuid4().hex}'
    path = tmp_path / 'crafted.pth'
    state = {k: v for k, v in _tiny_model().state_dict().items()}
    torch.save({'state_dict': state, 'meta': _Payload(f'touch {marker}')}, path)
    return path, marker


def _tiny_model():
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    return MODELS.build(tiny_config(CONFIG).model)


def _refused(message, path):
    assert str(path) in message and 'posix.system' in message and TRUST_ENV in message


def test_crafted_file_is_refused_by_the_loader_and_init_model(crafted):
    path, marker = crafted
    with pytest.raises(UntrustedCheckpointError) as info:
        _load_checkpoint(str(path))
    _refused(str(info.value), path)
    with pytest.raises(UntrustedCheckpointError):
        init_model(tiny_config(CONFIG), str(path), device='cpu')
    assert not marker.exists()


def test_crafted_file_is_refused_by_load_from_and_resume(crafted, coco_dir, tmp_path):
    path, marker = crafted
    cfg = on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'load_from')
    cfg.load_from = str(path)
    with pytest.raises(UntrustedCheckpointError):
        Runner.from_cfg(cfg).test()
    cfg = on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'resume')
    cfg.load_from, cfg.resume = str(path), True
    with pytest.raises(UntrustedCheckpointError):
        Runner.from_cfg(cfg).train()
    assert not marker.exists()


def test_crafted_file_is_refused_by_mim_test_and_the_demo(crafted, coco_dir, tmp_path,
                                                          tiny_models, images):
    path, marker = crafted
    config = tmp_path / 'tiny.py'
    on_shared_coco(tiny_config(CONFIG), coco_dir, tmp_path / 'test').dump(str(config))
    res = subprocess.run(MIM + ['test', 'mmpose', str(config), '--checkpoint', str(path)],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode != 0
    _refused(res.stdout + res.stderr, path)
    args = list(tiny_models)
    args[args.index('--pose-checkpoint') + 1] = str(path)
    res = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'demo'] + args,
                   check=False)
    assert res.returncode != 0
    _refused(res.stderr, path)
    assert not marker.exists()


def test_crafted_url_is_refused(crafted, tmp_path, monkeypatch):
    """URLs follow the same rule (MMEngine alone would unpickle a download fully)."""
    path, marker = crafted
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    url = f'http://127.0.0.1:{server.server_address[1]}/{path.name}'
    try:
        with pytest.raises(UntrustedCheckpointError) as info:
            CheckpointLoader.load_checkpoint(url, map_location='cpu')
    finally:
        server.shutdown()
    _refused(str(info.value), url)
    assert os.path.isfile(cached_path(url))  # downloaded, not run
    assert not marker.exists()


def test_opt_in_loads_a_trusted_non_tensor_file(tmp_path, monkeypatch):
    path = tmp_path / 'trusted.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': Harmless(7)}, path)
    with pytest.raises(UntrustedCheckpointError, match='Harmless'):
        _load_checkpoint(str(path))
    with trusted_checkpoints(str(path)):
        assert _load_checkpoint(str(path))['meta'].value == 7
    with pytest.raises(UntrustedCheckpointError):  # the trust ended with the context
        _load_checkpoint(str(path))
    monkeypatch.setenv(TRUST_ENV, os.pathsep.join(['/elsewhere.pth', str(path)]))
    assert _load_checkpoint(str(path))['meta'].value == 7
    monkeypatch.setenv(TRUST_ENV, '/elsewhere.pth')
    with pytest.raises(UntrustedCheckpointError):
        _load_checkpoint(str(path))


def test_runner_checkpoint_types_load_without_opt_in(tmp_path):
    """What MMEngine's runner writes beside the weights: numpy arrays, scalars and dtypes,
    ConfigDict, HistoryBuffer (with its statistics methods), Counter (MultiStepLR)."""
    from collections import Counter

    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance(f'hub_{uuid.uuid4().hex}')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float32(0.25))
    hub.update_info('dataset_meta', dict(sigmas=np.linspace(0, 1, 17), dtype=np.dtype('int64')))
    path = tmp_path / 'runner.pth'
    torch.save({'meta': dict(cfg=Config(dict(a=1)).pretty_text, seed=np.int64(3),
                             extra=Config(dict(b=2))._cfg_dict),
                'message_hub': hub.state_dict(), 'state_dict': {'w': torch.ones(1)},
                'param_schedulers': [dict(milestones=Counter([170, 200]))]}, path)
    ckpt = _load_checkpoint(str(path))
    restored = MessageHub.get_instance(f'hub_{uuid.uuid4().hex}')
    restored.load_state_dict(ckpt['message_hub'])
    assert restored.get_scalar('train/loss').mean() == pytest.approx(0.375)
    assert ckpt['param_schedulers'][0]['milestones'] == Counter([170, 200])
    assert ckpt['meta']['seed'] == 3 and ckpt['meta']['extra'].b == 2
