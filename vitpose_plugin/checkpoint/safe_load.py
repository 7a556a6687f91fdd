"""Checkpoint loading that never runs code from the file.

Every checkpoint MMEngine reads goes through ``CheckpointLoader`` (``load_from``,
``--resume``, ``mim test --checkpoint``, ``init_model``, ``init_cfg=Pretrained``). This
module registers the loaders of local files and URLs (``http(s)://``, ``openmmlab://``,
``torchvision://``, ``mmcls://``) so that each file is read with
``torch.load(weights_only=True)``, allowing exactly the Python types MMEngine's own
runner checkpoints hold (numpy arrays and scalars, ``HistoryBuffer``, ``Counter``,
``ConfigDict``):
``--resume`` and ``mim test`` work without any fallback.

A file that needs anything else is refused with :class:`UntrustedCheckpointError`,
which names the file and the refused global. Full unpickling (which can run arbitrary
code) happens only for files the user names as trusted::

    VITPOSE_TRUSTED_CHECKPOINTS=/path/a.pth:https://host/b.pth mim test ...

or, in Python, ``with trusted_checkpoints('/path/a.pth'): ...``. The entry ``*``
trusts every file.
"""
import contextlib
import os
import os.path as osp
import pickle
import re
from collections import Counter
from typing import Iterator, List, Optional, Set
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from . import hf_vitpose

TRUST_ENV = 'VITPOSE_TRUSTED_CHECKPOINTS'
_trusted_here: Set[str] = set()  # entries of trusted_checkpoints() contexts


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs full unpickling and the user has not said it is trusted."""


def _history_buffer_method(obj, name: str):
    """``getattr`` as MMEngine's pickled ``HistoryBuffer`` uses it: a statistics method
    of ``HistoryBuffer`` and nothing else (a general ``getattr`` would let a file walk
    from any allowed class to arbitrary code)."""
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def _numpy_globals() -> list:
    """numpy's array, scalar and dtype reconstructors under their pickled names (numpy 1
    writes ``numpy.core.multiarray``, numpy 2 ``numpy._core.multiarray``)."""
    multiarray = np.core.multiarray
    items = [np.ndarray, (np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype')]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        items += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    # dtype instances of numpy >= 1.25 are pickled by their class
    items += [(type(np.dtype(c)), f'numpy.dtypes.{type(np.dtype(c)).__name__}')
              for c in 'bBhHiIlLqQefdg?']
    return items


def runner_checkpoint_globals() -> list:
    """The non-tensor types of MMEngine runner checkpoints (``meta``, ``message_hub``,
    optimizer, scheduler and AMP loss-scaler states), for ``torch.serialization``."""
    return _numpy_globals() + [HistoryBuffer, Counter, ConfigDict,
                               (_history_buffer_method, 'builtins.getattr')]


def _trust_entries() -> Set[str]:
    entries = {e for e in os.environ.get(TRUST_ENV, '').split(os.pathsep) if e.strip()}
    return entries | _trusted_here


def _canonical(name: str) -> str:
    return name if '://' in name else osp.realpath(osp.expanduser(name))


def is_trusted(name: str) -> bool:
    """Whether the user named this file or URL as trusted (see the module docstring)."""
    entries = _trust_entries()
    return '*' in entries or _canonical(name) in {_canonical(e) for e in entries}


@contextlib.contextmanager
def trusted_checkpoints(*names: str) -> Iterator[None]:
    """Allow full unpickling of these files / URLs inside the context (``'*'``: all)."""
    added = {n for n in names if n not in _trusted_here}
    _trusted_here.update(added)
    try:
        yield
    finally:
        _trusted_here.difference_update(added)


def _refused_global(error: Exception) -> str:
    text = str(error)
    m = re.search(r'GLOBAL ([\w.]+)', text) or re.search(r'global[: ]+`?([\w.]+)', text)
    return m.group(1) if m else text.strip().splitlines()[0][:200]


def load_file(filename: str, map_location=None, source: Optional[str] = None):
    """``torch.load`` a local file with the runner-checkpoint allowlist, or fully if the
    user trusts it. ``source`` is the name to check trust for and to report (the URL
    of a downloaded file)."""
    source = source or filename
    if is_trusted(source):
        print_log(f'{source}: loading with full unpickling ({TRUST_ENV} names it as '
                  'trusted)', logger='current')
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(runner_checkpoint_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_global(e)
        raise UntrustedCheckpointError(
            f'{source}: refused to load this checkpoint: it needs full unpickling for '
            f'the global {refused!r}, which can run arbitrary code. vitpose_plugin loads '
            'checkpoints with torch.load(weights_only=True) and allows only the types '
            "MMEngine's own checkpoints hold. If you trust this file, say so explicitly: "
            f'{TRUST_ENV}={source} (several entries separated by {os.pathsep!r}; "*" '
            'trusts all), or in Python: with vitpose_plugin.checkpoint.'
            f'trusted_checkpoints({source!r}): ...') from None


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """MMEngine's local loader, with :func:`load_file`'s rules. A Hugging Face
    ``save_pretrained`` folder or ``.safetensors`` file is read with ``safetensors``
    (tensors only, nothing to unpickle)."""
    filename = osp.expanduser(filename)
    if hf_vitpose.is_pretrained_path(filename):
        return hf_vitpose.load_pretrained(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_file(filename, map_location)


def _download(url: str, model_dir: Optional[str], progress: bool) -> str:
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.exists(cached):
        print_log(f'Downloading {url} to {cached}', logger='current')
        torch.hub.download_url_to_file(url, cached, progress=progress)
    return cached


@CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)
def load_from_http(url: str, map_location=None, model_dir: Optional[str] = None,
                   progress: bool = os.isatty(0)):
    """Download (rank 0 first, as MMEngine does) into torch's hub cache, then load the
    file with :func:`load_file`'s rules (MMEngine would unpickle it fully)."""
    rank, world_size = get_dist_info()
    if rank == 0:
        cached = _download(url, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = _download(url, model_dir, progress)
    return load_file(cached, map_location, source=url)


def _named_url(table: dict, name: str, scheme: str) -> str:
    if name not in table:
        raise KeyError(f'{scheme}{name}: unknown model name; known: {sorted(table)[:20]} ...')
    return table[name]


@CheckpointLoader.register_scheme(prefixes=('open-mmlab://', 'openmmlab://'), force=True)
def load_from_openmmlab(filename: str, map_location=None):
    """``openmmlab://NAME``: MMEngine's model table, loaded by :func:`load_from_http`."""
    scheme, name = filename.split('://', 1)
    name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
    url = _named_url(mmengine_checkpoint.get_external_models(), name, scheme + '://')
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location)
    return load_from_local(osp.join(mmengine_checkpoint._get_mmengine_home(), url),
                           map_location)


@CheckpointLoader.register_scheme(prefixes=('modelzoo://', 'torchvision://'), force=True)
def load_from_torchvision(filename: str, map_location=None):
    """``torchvision://NAME``: torchvision's weights, loaded by :func:`load_from_http`."""
    scheme, name = filename.split('://', 1)
    url = _named_url(mmengine_checkpoint.get_torchvision_models(), name, scheme + '://')
    return load_from_http(url, map_location)


@CheckpointLoader.register_scheme(prefixes='mmcls://', force=True)
def load_from_mmcls(filename: str, map_location=None):
    """``mmcls://NAME``: MMClassification's weights, loaded by :func:`load_from_http`."""
    name = filename[len('mmcls://'):]
    url = _named_url(mmengine_checkpoint.get_mmcls_models(), name, 'mmcls://')
    return mmengine_checkpoint._process_mmcls_checkpoint(load_from_http(url, map_location))


def unwrap_state_dict(checkpoint) -> dict:
    """The weights of a loaded checkpoint: its ``state_dict``, MAE's ``model``, or the
    checkpoint itself."""
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def load_state_dict_file(filename: str, map_location='cpu') -> dict:
    """Load any checkpoint MMEngine can name (path or URL) and return its weights."""
    return unwrap_state_dict(CheckpointLoader.load_checkpoint(filename, map_location))


__all__: List[str] = [
    'TRUST_ENV', 'UntrustedCheckpointError', 'is_trusted', 'load_file',
    'load_state_dict_file', 'runner_checkpoint_globals', 'trusted_checkpoints',
    'unwrap_state_dict'
]
