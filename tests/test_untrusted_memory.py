"""No pointer-carrying value comes out of an untrusted file: numpy object arrays (built by
a direct ``ndarray`` call over raw bytes, through numpy's own pickled form, or through a
dtype whose state claims objects) are refused at load, naming the file; the numpy values
MMEngine writes still load, equal, as plain numpy types."""
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from vitpose_plugin.checkpoint.allowlist import CheckpointError, NumpyArrayClass

_MULTIARRAY = np.core.multiarray


class Reduce:
    """Pickles as ``func(*args)``, then ``__setstate__(state)`` when ``state`` is given."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else \
            (self.func, self.args, self.state)


def _dtype_with_state(code, state):
    """numpy.dtype(code) whose pickled __setstate__ carries ``state``."""
    return Reduce(np.dtype, (code, False, True), state)


CRAFTED = {
    # the reported exploit: ndarray((17,), dtype('O'), b'A' * 136) in flip_indices
    'ndarray call, object dtype': Reduce(np.ndarray, ((17, ), np.dtype('O'), b'A' * 136)),
    'ndarray call, float dtype': Reduce(np.ndarray, ((2, ), np.dtype('f8'), b'A' * 16)),
    # numpy's own form, with an object dtype and raw bytes
    'reconstruct, object dtype': Reduce(
        _MULTIARRAY._reconstruct, (np.ndarray, (0, ), b'b'),
        (1, (17, ), np.dtype('O'), False, b'A' * 136)),
    # a float dtype whose state sets the has-object flags (numpy accepts it)
    'dtype state with object flags': Reduce(
        _MULTIARRAY._reconstruct, (np.ndarray, (0, ), b'b'),
        (1, (17, ), _dtype_with_state('f8', (3, '|', None, None, None, -1, -1, 63)), False,
         b'A' * 136)),
    'structured dtype with an object field': Reduce(
        _MULTIARRAY._reconstruct, (np.ndarray, (0, ), b'b'),
        (1, (1, ), np.dtype([('p', 'O')]), False, b'A' * 8)),
    'object scalar': Reduce(_MULTIARRAY.scalar, (np.dtype('O'), b'A' * 8)),
    'bytes shorter than the shape': Reduce(
        _MULTIARRAY._reconstruct, (np.ndarray, (0, ), b'b'),
        (1, (1000, ), np.dtype('f8'), False, b'A' * 16)),
    'Counter over an array': Reduce(Counter, (np.arange(3), )),
}


@pytest.mark.parametrize('name', sorted(CRAFTED))
def test_pointer_carrying_numpy_is_refused_naming_the_file(tmp_path, name):
    path = tmp_path / 'crafted.pth'
    torch.save({'state_dict': {'w': torch.ones(2)},
                'meta': {'dataset_meta': {'flip_indices': CRAFTED[name]}}}, path)
    with pytest.raises(CheckpointError) as info:
        _load_checkpoint(str(path))
    assert str(path) in str(info.value)


def test_numpy_values_mmengine_writes_load_as_plain_numpy(tmp_path):
    values = dict(sigmas=np.linspace(0, 1, 17, dtype=np.float32),
                  flip=np.arange(17, dtype=np.int64)[::-1].copy(),
                  fortran=np.asfortranarray(np.arange(6.).reshape(2, 3)),
                  flags=np.array([True, False]), names=np.array(['nose', 'eye']),
                  empty=np.zeros((0, 3)), scalar=np.float32(0.25), index=np.int64(3),
                  dtype=np.dtype('int64'), milestones=Counter([170, 200]))
    path = tmp_path / 'runner.pth'
    torch.save({'meta': values}, path)
    meta = _load_checkpoint(str(path))['meta']
    for key, value in values.items():
        got = meta[key]
        assert type(got) is type(value), key
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype and got.flags.writeable, key
            np.testing.assert_array_equal(got, value)
        else:
            assert got == value, key
    assert not meta['sigmas'].dtype.hasobject
    # the placeholder class cannot be called from a file, nor directly
    with pytest.raises(CheckpointError):
        NumpyArrayClass((2, ), np.dtype('f8'))


def test_dict_keys_are_plain_values(tmp_path):
    """A key is hashed and compared, never walked: one holding an array placeholder or a
    HistoryBuffer would reach the caller unchecked, so keys are numbers, strings or short
    tuples of them."""
    array = Reduce(_MULTIARRAY._reconstruct, (np.ndarray, (0, ), b'b'),
                   (1, (2, ), np.dtype('f8'), False, b'A' * 16))
    path = tmp_path / 'key.pth'
    torch.save({'meta': {(array, 1): 1}}, path)
    with pytest.raises(CheckpointError, match='a key of type tuple'):
        _load_checkpoint(str(path))
    torch.save({'meta': {(1, 'a', (2.0, None)): 1}}, path)
    assert _load_checkpoint(str(path))['meta'] == {(1, 'a', (2.0, None)): 1}
