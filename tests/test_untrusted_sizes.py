"""Sizes declared inside a file of a few KB drive no loop and no allocation: each crafted
file below is refused within a second or two, in a process whose peak memory grows by
less than a few hundred MB, with a message naming the file and the implausible value."""
import json
import subprocess
import sys
import textwrap
import zipfile
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from safetensors.torch import save_file

from helpers import REPO, tiny_config

CONFIG = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
BUDGET_S, BUDGET_MB = 2.0, 300


class Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _history(values):
    buffer = HistoryBuffer()
    buffer._log_history, buffer._count_history = values, values
    return buffer


def _files(folder):
    """{name: (path, what the message must name)}: each a few KB at most."""
    huge = 10**15
    files = {}

    def pth(name, obj, named):
        files[name] = (folder / f'{name}.pth', named)
        torch.save(obj, files[name][0])

    def raw(name, pickle_bytes, named):
        """A torch.save zip archive whose data.pkl is hand-written pickle opcodes."""
        files[name] = (folder / f'{name}.pth', named)
        with zipfile.ZipFile(files[name][0], 'w') as z:
            z.writestr('archive/data.pkl', pickle_bytes)
            z.writestr('archive/version', '3\n')

    pos = 'backbone.pos_embed'
    files['pos_embed zero width (.safetensors)'] = (folder / 'zero.safetensors', str(huge))
    save_file({pos: torch.zeros(1, huge, 0)}, files['pos_embed zero width (.safetensors)'][0])
    pth('pos_embed zero width', {'state_dict': {pos: torch.zeros(1, huge, 0)}}, str(huge))
    pth('pos_embed stride 0', {'state_dict': {pos: torch.zeros(1, 1, 64).expand(1, huge, 64)}},
        str(huge))
    # plausible for the loader (2^24 positions), implausible for a ViT
    pth('pos_embed of 2^24 positions', {'state_dict': {pos: torch.zeros(1, 2**24, 0)}},
        str(2**24 - 1))
    pth('TransPose sine table zero width',
        {'global_encoder.layers.0.linear1.weight': torch.zeros(2, 2),
         'reduce.weight': torch.zeros(2, 2), 'pos_embedding': torch.zeros(2**24, 1, 0)},
        'pos_embedding')
    pth('Counter over a stride-0 tensor',
        {'meta': Reduce(Counter, (torch.zeros(1).expand(10**12), ))}, 'Counter')
    pth('HistoryBuffer over stride-0 tensors',
        {'message_hub': _history(torch.zeros(1).expand(2 * 10**9))}, str(2 * 10**9))
    pth('HistoryBuffer over an ndarray call',
        {'message_hub': _history(Reduce(np.ndarray, ((2 * 10**9, ), np.dtype('f8'))))},
        'numpy.ndarray')
    pth('bytes(10^12)', {'meta': Reduce(bytes, (10**12, ))}, 'bytes')
    nested = []
    for _ in range(150):
        nested = [nested]
    pth('nested 150 deep', {'meta': nested}, 'nested deeper')
    # tuples as dict keys are hashed while unpickling: nested 10^6 deep, hashing recurses
    # in C past the stack; doubled through memo references, 2^30 visits from 1 KB
    raw('tuple key nested 60000 deep',
        b'\x80\x02}q\x00' + b'K\x01' + b'\x85' * 60000 + b'K\x00s.', 'nested 101 deep')
    doubling = b'\x80\x02}q\x00K\x01q\x01' + b''.join(
        b'h\x01h\x01\x86q\x01' for _ in range(30)) + b'K\x00s.'
    raw('tuple key doubled 30 times', doubling, 'elements counted through shared')
    return files


SCRIPT = textwrap.dedent('''
    import json, resource, sys, time
    from mmengine.config import Config
    from mmpose.apis import init_model
    cfg = Config.fromfile(sys.argv[1])
    init_model(cfg, None, device='cpu')  # warm: imports, registries
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {}
    for name, path in json.loads(sys.argv[2]).items():
        start = time.perf_counter()
        try:
            init_model(cfg, path, device='cpu')
            message = None
        except Exception as e:
            message = f'{type(e).__name__}: {e}'
        out[name] = dict(seconds=time.perf_counter() - start, message=message)
    out['_grew_mb'] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps(out))
''')


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp('bombs')
    files = _files(folder)
    config = folder / 'tiny.py'
    tiny_config(CONFIG).dump(str(config))
    res = subprocess.run([sys.executable, '-c', SCRIPT, str(config),
                          json.dumps({k: str(v[0]) for k, v in files.items()})],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return files, json.loads(res.stdout.strip().splitlines()[-1])


def test_crafted_files_are_a_few_kb(outcomes):
    files, _ = outcomes
    for name, (path, _) in files.items():
        assert path.stat().st_size < 64 * 1024, name


@pytest.mark.parametrize('name', [
    'pos_embed zero width (.safetensors)', 'pos_embed zero width', 'pos_embed stride 0',
    'pos_embed of 2^24 positions', 'TransPose sine table zero width',
    'Counter over a stride-0 tensor', 'HistoryBuffer over stride-0 tensors',
    'HistoryBuffer over an ndarray call', 'bytes(10^12)', 'nested 150 deep',
    'tuple key nested 60000 deep', 'tuple key doubled 30 times'])
def test_size_bomb_is_refused_quickly_by_name(outcomes, name):
    files, out = outcomes
    path, named = files[name]
    result = out[name]
    assert result['message'] is not None, f'{name}: loaded'
    assert str(path) in result['message'] and named in result['message'], result['message']
    assert result['seconds'] < BUDGET_S, result


def test_size_bombs_stay_within_memory(outcomes):
    assert outcomes[1]['_grew_mb'] < BUDGET_MB
