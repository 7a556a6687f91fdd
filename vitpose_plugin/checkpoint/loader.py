"""Load local checkpoints under torch >= 2.6's ``weights_only=True`` default.

MMEngine 0.10 calls ``torch.load(filename)`` without ``weights_only``. Since torch
2.6 that refuses every runner checkpoint (its ``meta`` and ``message_hub`` hold
Python objects), so ``--resume`` and ``mim test --checkpoint`` would fail. This
module re-registers MMEngine's loader for local paths: it tries the safe
``weights_only=True`` load first and falls back to a full unpickling, with a log
line, only for files that need it. URLs are unaffected (``torch.hub`` already
loads them with ``weights_only=False``).
"""
import os.path as osp
import pickle

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename, map_location=None):
    """Same contract as MMEngine's ``load_from_local``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        print_log(
            f'{filename} stores Python objects besides tensors (e.g. an MMEngine '
            'runner checkpoint); loading it with weights_only=False. Only load '
            'checkpoints from sources you trust.', logger='current')
        return torch.load(filename, map_location=map_location, weights_only=False)
