"""Checkpoint loading that never runs code from the file.

Every checkpoint MMEngine reads goes through ``CheckpointLoader`` (``load_from``,
``--resume``, ``mim test --checkpoint``, ``init_model``, ``init_cfg=Pretrained``). This
module registers the loaders of local files and URLs (``http(s)://``, ``openmmlab://``,
``torchvision://``, ``mmcls://``). A file is recognised by its content (torch.save's zip
or legacy format, or safetensors, whatever its name) and read with
``torch.load(weights_only=True)`` plus the types MMEngine's runner checkpoints hold, in
the restricted forms of :mod:`.allowlist`; ``--resume`` and ``mim test`` work without any
fallback, and the config text MMEngine would run on ``--resume`` is reduced to its data.

A file that needs any other global is refused with :class:`UntrustedCheckpointError`,
which names the file and the refused global; a corrupt, truncated or implausible file
with :class:`~.allowlist.CheckpointError`, which names the file and what is wrong. Full
unpickling (which can run arbitrary code) happens only for files the user names as
trusted::

    VITPOSE_TRUSTED_CHECKPOINTS=/path/a.pth:https://host/b.pth mim test ...

or, in Python, ``with trusted_checkpoints('/path/a.pth'): ...``. The entry ``*``
trusts every file. Downloads are cached per whole URL, so trusting one URL never
unpickles another URL's file.
"""
import contextlib
import hashlib
import os
import os.path as osp
import pickle
import re
import urllib.error
from typing import Iterator, List, Optional, Set
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from . import hf_vitpose
from .allowlist import (
    CheckpointError,
    check_loaded,
    inert_config_text,
    loading,
    runner_checkpoint_globals,
    scan_checkpoint,
)

TRUST_ENV = 'VITPOSE_TRUSTED_CHECKPOINTS'
_trusted_here: Set[str] = set()  # entries of trusted_checkpoints() contexts
# torch's own words for a global outside the allowlist (and for a blocked module)
_REFUSED = (re.compile(r'Unsupported global: GLOBAL ([\w.]+) was not an allowed global'),
            re.compile(r'unsupported GLOBAL ([\w.]+) whose module [\w.]+ is blocked'))


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs full unpickling and the user has not said it is trusted."""


def parse_trust_entries(text: str) -> Set[str]:
    """The entries of a ``VITPOSE_TRUSTED_CHECKPOINTS`` value: paths and URLs separated
    by ``:`` (``os.pathsep``). A URL's own ``://`` and ``:port`` do not split it; a URL
    ends at the next ``:`` after its host."""
    entries, rest = [], text
    while rest:
        m = re.match(r'[A-Za-z][A-Za-z0-9+.-]*://[^/:]*(?::\d+)?', rest)
        if m:  # scheme://host[:port], then the path up to the next separator
            end = rest.find(os.pathsep, m.end())
        else:
            end = rest.find(os.pathsep)
        end = len(rest) if end < 0 else end
        entries.append(rest[:end].strip())
        rest = rest[end + 1:]
    return {e for e in entries if e}


def _trust_entries() -> Set[str]:
    return parse_trust_entries(os.environ.get(TRUST_ENV, '')) | _trusted_here


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


def sniff_format(filename: str) -> str:
    """``'zip'`` (torch.save), ``'legacy'`` (torch.save before 1.6), ``'safetensors'``;
    :class:`CheckpointError` for anything else."""
    with open(filename, 'rb') as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
    if head[:4] == b'PK\x03\x04':
        return 'zip'
    if head[:1] == b'\x80':
        return 'legacy'
    if len(head) == 9 and head[8:9] == b'{' and int.from_bytes(head[:8], 'little') < size:
        return 'safetensors'
    if not head:
        raise CheckpointError(f'{filename}: the file is empty')
    raise CheckpointError(
        f'{filename}: not a checkpoint: it starts with {head!r}, which is neither a '
        'PyTorch file (a zip archive, or a pickle for files before torch 1.6) nor '
        'safetensors')


def _torch_load(filename: str, source: str, kind: str, map_location):
    try:
        with torch.serialization.safe_globals(runner_checkpoint_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        refused = [m.group(1) for r in _REFUSED for m in [r.search(str(e))] if m]
        if refused:
            raise UntrustedCheckpointError(
                f'{source}: refused to load this checkpoint: it needs full unpickling for '
                f'the global {refused[0]!r}, which can run arbitrary code. vitpose_plugin '
                'loads checkpoints with torch.load(weights_only=True) and allows only the '
                "types MMEngine's own checkpoints hold. If you trust this file, say so "
                f'explicitly: {TRUST_ENV}={source} (several entries separated by '
                f'{os.pathsep!r}; "*" trusts all), or in Python: with vitpose_plugin.'
                f'checkpoint.trusted_checkpoints({source!r}): ...') from None
        raise CheckpointError(f'{source}: not a valid checkpoint: its pickle cannot be '
                              f'read ({_first_line(e)})') from None
    except EOFError:
        raise CheckpointError(f'{source}: the file is truncated (it ends inside the '
                              'pickled data)') from None
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            OSError, OverflowError, MemoryError, RecursionError) as e:
        what = 'zip archive' if kind == 'zip' else 'legacy PyTorch file'
        raise CheckpointError(f'{source}: a corrupt or truncated {what}: '
                              f'{type(e).__name__}: {_first_line(e)}') from None


def _first_line(error: Exception) -> str:
    lines = [ln for ln in str(error).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(error).__name__


def _inert_meta_config(checkpoint, source: str) -> None:
    """MMEngine's ``Runner.resume`` runs ``meta['config']`` as Python: keep only its data."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or 'config' not in meta:
        return
    text = inert_config_text(meta['config'])
    if text is None:
        del meta['config']
    else:
        meta['config'] = text


def load_file(filename: str, map_location=None, source: Optional[str] = None):
    """Load a local checkpoint file (torch.save's zip or legacy format, or safetensors)
    with the allowlist of :mod:`.allowlist`, or fully if the user trusts it. ``source``
    is the name to check trust for and to report (the URL of a downloaded file)."""
    source = source or filename
    with loading(source):
        kind = sniff_format(filename)
        if kind == 'safetensors':
            return hf_vitpose.load_pretrained(filename, source=source)
        if is_trusted(source):
            print_log(f'{source}: loading with full unpickling ({TRUST_ENV} names it as '
                      'trusted)', logger='current')
            return torch.load(filename, map_location=map_location, weights_only=False)
        scan_checkpoint(filename, kind)
        checkpoint = check_loaded(_torch_load(filename, source, kind, map_location))
        _inert_meta_config(checkpoint, source)
        return checkpoint


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """MMEngine's local loader, with :func:`load_file`'s rules. A Hugging Face
    ``save_pretrained`` folder or ``.safetensors`` file is read with ``safetensors``
    (tensors only, nothing to unpickle)."""
    filename = osp.expanduser(filename)
    if osp.isdir(filename):
        if hf_vitpose.is_pretrained_path(filename):
            with loading(filename):
                return hf_vitpose.load_pretrained(filename)
        raise CheckpointError(f'{filename}: a folder without config.json: not a Hugging '
                              'Face save_pretrained folder, and not a checkpoint file')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_file(filename, map_location)


class CheckpointDownloadError(OSError):
    """A checkpoint URL could not be downloaded; the message says how to go on offline."""


def cached_path(url: str, model_dir: Optional[str] = None) -> str:
    """Where a URL is cached: torch's hub folder, one file per whole URL (its hash, then
    its base name), so two URLs never share a file."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return osp.join(model_dir, f'{digest}-{osp.basename(urlparse(url).path) or "file"}')


def _download(url: str, model_dir: Optional[str], progress: bool) -> str:
    cached = cached_path(url, model_dir)
    if not osp.exists(cached):
        os.makedirs(osp.dirname(cached), exist_ok=True)
        print_log(f'Downloading {url} to {cached}', logger='current')
        try:  # torch writes a temporary file and renames it once complete
            torch.hub.download_url_to_file(url, cached, progress=progress)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, 'reason', None) or e
            raise CheckpointDownloadError(
                f'could not download {url}: {reason}. Offline? Download the file on a '
                'machine with internet access and pass the local path instead (load_from='
                ', --checkpoint, init_cfg=dict(type=\'Pretrained\', checkpoint=PATH), '
                'init_model(config, PATH), or the demo\'s --pose-checkpoint / '
                '--det-checkpoint), or start without these weights (init_cfg=None; the '
                'demo\'s --random-weights).') from None
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
    'TRUST_ENV', 'CheckpointDownloadError', 'CheckpointError', 'UntrustedCheckpointError',
    'cached_path', 'is_trusted', 'load_file', 'load_state_dict_file', 'parse_trust_entries',
    'runner_checkpoint_globals', 'sniff_format', 'trusted_checkpoints', 'unwrap_state_dict'
]
