"""What may come out of a checkpoint that the user has not said they trust.

``torch.load(weights_only=True)`` builds tensors and plain containers only, plus the
globals it is given. MMEngine's runner checkpoints also hold numpy arrays, scalars and
dtypes, ``HistoryBuffer``, ``Counter`` (MultiStepLR milestones) and ``ConfigDict``, so
those must be allowed, but never as the raw callables: ``numpy.ndarray(shape,
dtype('O'), buffer)`` would make an array of attacker-chosen object pointers, and
``Counter`` of a stride-0 array with 10^12 items would never return. Instead:

* numpy arrays come only in the form numpy itself pickles them
  (``_reconstruct(ndarray, (0,), b'b')`` then ``__setstate__``): the bytes must be in the
  file, the dtype is rebuilt from a plain numeric / string type code (never the file's
  dtype object, whose ``__setstate__`` can claim it holds objects), and all arrays of
  one file together are bounded by :data:`MAX_NUMPY_BYTES`;
* ``Counter`` takes a dict, ``getattr`` only ``HistoryBuffer``'s statistics methods;
* after loading, :func:`check_loaded` walks the result (bounded depth and count): it
  swaps the placeholder arrays for real ones, and refuses tensors whose elements are
  not backed by stored bytes (expanded / overlapping views) or that claim absurd sizes
  without elements, unknown types and ``HistoryBuffer`` state with unknown fields;
* :func:`inert_config_text` turns a stored config text into data only, since MMEngine's
  ``Runner.resume`` executes ``meta['config']`` as Python.

Every refusal is a :class:`CheckpointError` naming the file and the offending key.
"""
import ast
import pickle
import re
import threading
from collections import Counter
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

MAX_NUMPY_BYTES = 256 * 2**20  # all numpy arrays of one file together
MAX_EMPTY_DIM = 2**24  # largest dimension of a tensor without stored elements
MAX_DEPTH = 100
MAX_OBJECTS = 5_000_000
MAX_CONFIG_CHARS = 2**20
# names MMEngine's Config refuses or acts on: not data
_RESERVED_NAMES = {'custom_imports', 'filename', 'text', 'pretty_text', 'env_variables'}
MAX_KEY_TUPLE_DEPTH = 100  # tuples nested deeper crash hashing (C recursion)
MAX_TUPLE_ELEMENTS = 10**6  # counted through shared references, as hashing visits them
# plain numeric, bool and fixed-width string type codes: nothing that holds pointers
_DTYPE_CODE = re.compile(r'^[<>|=]?(?:[biufc]\d{1,2}|b1|\?|[SU]\d{1,6})$')
_HISTORY_FIELDS = {'max_length', '_log_history', '_count_history', '_statistics_methods'}


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, truncated, not a checkpoint, or holds values the
    plugin refuses to build (the message names the file and the key or value)."""


_state = threading.local()


def current_source() -> str:
    """The file being loaded by this thread (for messages)."""
    return getattr(_state, 'source', None) or 'checkpoint'


class loading:  # noqa: N801  (a context, used as ``with loading(name):``)
    """Marks the file this thread is loading: messages name it, numpy's budget is per
    file."""

    def __init__(self, source: str):
        self.source = source

    def __enter__(self):
        self.saved = getattr(_state, 'source', None), getattr(_state, 'numpy_bytes', 0)
        _state.source, _state.numpy_bytes = self.source, 0
        return self

    def __exit__(self, *exc):
        # the last file's name stays for messages raised while its weights are applied
        _state.numpy_bytes = self.saved[1]
        return False


def _refuse(what: str) -> None:
    raise CheckpointError(f'{current_source()}: {what}')


def safe_dtype(dtype: Any, where: str = 'a numpy dtype') -> np.dtype:
    """A fresh numpy dtype of the same plain type code, or a refusal."""
    code = dtype.str if isinstance(dtype, np.dtype) else dtype
    if isinstance(dtype, np.dtype) and (dtype.fields is not None or dtype.subdtype is not None):
        _refuse(f'{where}: structured numpy dtype {dtype!r} is not allowed')
    if not isinstance(code, str) or not _DTYPE_CODE.match(code):
        _refuse(f'{where}: numpy dtype {code!r} is not allowed (only plain numbers, '
                'booleans and strings: object and structured dtypes carry pointers)')
    fresh = np.dtype(code)
    if isinstance(dtype, np.dtype) and (dtype.flags != fresh.flags or dtype.hasobject):
        _refuse(f'{where}: numpy dtype {code!r} with flags {dtype.flags} (numpy writes '
                f'{fresh.flags}; the state claims it holds objects)')
    return fresh


class NumpyArrayClass:
    """Stands for ``numpy.ndarray`` in a pickle: usable only as ``_reconstruct``'s first
    argument, never called."""

    def __init__(self, *args, **kwargs):
        _refuse('calls numpy.ndarray(...) directly, which can build arrays over raw '
                'memory; numpy never pickles arrays that way')


class PendingArray:
    """What ``_reconstruct`` returns; its ``__setstate__`` (numpy's pickled state)
    builds the real array, which :func:`check_loaded` puts in its place."""

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            _refuse(f'a numpy array state that numpy does not write: {type(state).__name__}'
                    f' of length {len(state) if isinstance(state, tuple) else "?"}')
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= 32 and
                all(isinstance(d, int) and 0 <= d for d in shape)):
            _refuse(f'numpy array shape {shape!r} is not a tuple of sizes')
        dtype = safe_dtype(dtype)
        if isinstance(raw, bytearray):
            raw = bytes(raw)
        if not isinstance(raw, bytes):
            _refuse(f'numpy array data of type {type(raw).__name__} (expected bytes)')
        count = int(np.prod(shape, dtype=np.float64)) if shape else 1
        if count * dtype.itemsize != len(raw):
            _refuse(f'numpy array of shape {shape} and dtype {dtype.str} needs '
                    f'{count * dtype.itemsize} bytes, the file holds {len(raw)}')
        _state.numpy_bytes = getattr(_state, 'numpy_bytes', 0) + len(raw)
        if _state.numpy_bytes > MAX_NUMPY_BYTES:
            _refuse(f'numpy arrays of over {MAX_NUMPY_BYTES >> 20} MB in all: no MMEngine '
                    'checkpoint holds that much outside its tensors')
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order='F' if fortran else 'C')
        self.array = array.copy(order='K')


def _reconstruct(cls, shape, marker):
    if cls is not NumpyArrayClass or shape != (0, ) or marker not in (b'b', 'b'):
        _refuse(f'numpy _reconstruct{(cls, shape, marker)!r} is not the form numpy '
                'pickles arrays in')
    return PendingArray()


def _scalar(dtype, data=None):
    dtype = safe_dtype(dtype, 'a numpy scalar')
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        _refuse(f'numpy scalar of dtype {dtype.str} with {type(data).__name__} data '
                f'(expected {dtype.itemsize} bytes)')
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _dtype(code, align=False, copy=True):
    # always a copy: __setstate__ on numpy's shared float64 descriptor would change
    # every float64 array of the process
    return np.dtype(safe_dtype(code).str, bool(align), True)


def _bytes(*args):
    # protocol 2 pickles b'' (the data of an empty array) as bytes(); bytes(n) would
    # allocate n bytes from a number in the file
    if args:
        _refuse(f'bytes{args!r:.60} (only bytes() is how pickle writes b\'\')')
    return b''


def _counter(mapping=None):
    if mapping is None:
        return Counter()
    if type(mapping) is not dict:
        _refuse(f'Counter of a {type(mapping).__name__} (MMEngine writes Counter(dict))')
    return Counter(mapping)


def _history_buffer_method(obj, name: str):
    """``getattr`` as a pickled ``HistoryBuffer`` uses it: its statistics methods only
    (a general ``getattr`` would let a file walk from an allowed class to any code)."""
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def runner_checkpoint_globals() -> list:
    """The non-tensor types of MMEngine runner checkpoints (``meta``, ``message_hub``,
    optimizer, scheduler and AMP loss-scaler states), as ``(object, pickled name)`` for
    ``torch.serialization.safe_globals``."""
    items = [(NumpyArrayClass, 'numpy.ndarray'), (_dtype, 'numpy.dtype'),
             (PendingArray, f'{__name__}.PendingArray'), (HistoryBuffer, None),
             (_counter, 'collections.Counter'), (ConfigDict, None), (_bytes, 'builtins.bytes'),
             (_history_buffer_method, 'builtins.getattr')]
    # numpy 1 writes numpy.core.multiarray, numpy 2 numpy._core.multiarray
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        items += [(_reconstruct, f'{module}._reconstruct'), (_scalar, f'{module}.scalar')]
    # the dtype classes only so that __setstate__ may run on _dtype's results; the
    # arrays never use those objects (safe_dtype rebuilds them from their type code)
    items += [(type(np.dtype(c)), None) for c in 'bBhHiIlLqQefdgFD?SU']
    return [obj if name is None else (obj, name) for obj, name in items]


# ------------------------------------------------------------------ before loading
_PUSH_MEMO = {'BINGET', 'LONG_BINGET', 'GET'}
_PUT_MEMO = {'BINPUT', 'LONG_BINPUT', 'PUT', 'MEMOIZE'}
_LEAF = (0, 1)  # (tuple nesting depth, elements hashing visits) of a non-tuple


def scan_pickle(ops) -> None:
    """Refuse, before unpickling, tuples that hashing them would crash on (nested over
    :data:`MAX_KEY_TUPLE_DEPTH`: C recursion) or hang on (over
    :data:`MAX_TUPLE_ELEMENTS` elements counted through shared references, which a few
    bytes of memo references can double per level). ``ops`` is
    ``pickletools.genops`` of one pickle; a pickle it cannot parse is left to torch."""
    stack, memo, marks = [], {}, []
    for op, arg, _ in ops:
        name = op.name
        if name == 'MARK':
            marks.append(len(stack))
            continue
        if name in ('TUPLE', 'TUPLE1', 'TUPLE2', 'TUPLE3'):
            n = {'TUPLE1': 1, 'TUPLE2': 2, 'TUPLE3': 3}.get(name)
            start = marks.pop() if n is None else len(stack) - n
            items, stack[start:] = stack[start:], []
            depth = 1 + max((d for d, _ in items), default=0)
            size = 1 + sum(e for _, e in items)
            if depth > MAX_KEY_TUPLE_DEPTH or size > MAX_TUPLE_ELEMENTS:
                _refuse(f'a tuple nested {depth} deep with {size} elements counted through '
                        'shared references: hashing it would crash or never end')
            stack.append((depth, size))
        elif name in _PUSH_MEMO:
            stack.append(memo.get(arg, _LEAF))
        elif name in _PUT_MEMO:
            if stack:
                memo[len(memo) if name == 'MEMOIZE' else arg] = stack[-1]
        elif name == 'DUP':
            stack.append(stack[-1] if stack else _LEAF)
        elif name in ('LIST', 'DICT', 'FROZENSET', 'POP_MARK', 'APPENDS', 'SETITEMS',
                      'ADDITEMS'):
            start = marks.pop() if marks else len(stack)
            del stack[start:]
            if name in ('LIST', 'DICT', 'FROZENSET'):
                stack.append(_LEAF)
        elif name == 'STOP':
            return
        else:  # every other opcode: pops what it takes, pushes at most one value
            pops = len(op.stack_before) - (1 if op.stack_before and
                                          op.stack_before[-1].name == 'mark' else 0)
            pops = min(pops, len(stack))
            if pops:
                del stack[-pops:]
            stack.extend([_LEAF] * len(op.stack_after))


def scan_checkpoint(filename: str, kind: str) -> None:
    """:func:`scan_pickle` over the pickles of a torch.save file (``kind`` 'zip':
    ``*/data.pkl``; 'legacy': the magic number, protocol, system info and object)."""
    import pickletools
    import zipfile
    try:
        if kind == 'zip':
            with zipfile.ZipFile(filename) as z:
                names = [n for n in z.namelist() if n.endswith('data.pkl')]
                if names:
                    scan_pickle(pickletools.genops(z.read(names[0])))
            return
        with open(filename, 'rb') as f:
            for _ in range(4):
                scan_pickle(pickletools.genops(f))
    except CheckpointError:
        raise
    except Exception:  # not parseable here: torch.load says what is wrong
        return


# ------------------------------------------------------------------ after loading
_SCALARS = (str, bytes, int, float, bool, complex, type(None))
_TORCH_VALUES = (torch.dtype, torch.device, torch.Size, torch.memory_format, torch.layout)


def _check_tensor(t: torch.Tensor, where: str) -> None:
    if t.layout != torch.strided:
        return  # sparse tensors are validated by torch.load itself
    n = t.numel()
    if n == 0 or t.device.type == 'meta':
        big = [d for d in t.shape if d > MAX_EMPTY_DIM]
        if big or (t.device.type == 'meta' and n > 2**31):
            _refuse(f'{where}: tensor of shape {tuple(t.shape)} claims a size of '
                    f'{big[0] if big else n} without any stored elements')
        return
    stored = t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
    if n * t.element_size() > stored:
        _refuse(f'{where}: tensor of shape {tuple(t.shape)} and strides {t.stride()} has '
                f'{n} elements over {max(stored, 0) // t.element_size()} stored ones (an '
                'expanded or overlapping view; save it with .contiguous())')


def _path(where: tuple) -> str:
    """``a.b[3].c`` from the keys walked, each cut to a line (computed only for messages)."""
    out = ''
    for k in where:
        k = k if isinstance(k, (str, int)) and not isinstance(k, bool) else repr(k)
        k = k if isinstance(k, int) else (k[:60] + '...' if len(k) > 60 else k)
        out += f'[{k}]' if isinstance(k, int) else (f'.{k}' if out else k)
        if len(out) > 300:
            return out[:300] + '...'
    return out


def _plain_key(k, depth: int = 0) -> bool:
    """A dict key as checkpoints have them: a number, a string, or a short flat tuple."""
    if isinstance(k, _SCALARS):
        return True
    return type(k) is tuple and depth < 4 and len(k) <= 16 and \
        all(_plain_key(v, depth + 1) for v in k)


class _Walk:
    def __init__(self):
        self.count = 0
        self.done = {}  # id -> replacement (shared and cyclic references)

    def __call__(self, obj, where: tuple, depth: int = 0):
        key = id(obj)
        if key in self.done:
            return self.done[key]
        self.count += 1
        if self.count > MAX_OBJECTS:
            _refuse(f'holds over {MAX_OBJECTS} objects')
        if depth > MAX_DEPTH:
            _refuse(f'{_path(where)}: nested deeper than {MAX_DEPTH} levels')
        out = obj
        if isinstance(obj, _SCALARS + _TORCH_VALUES):
            pass
        elif isinstance(obj, torch.Tensor):
            _check_tensor(obj, _path(where))
        elif isinstance(obj, PendingArray):
            if obj.array is None:
                _refuse(f'{_path(where)}: numpy array without data')
            out = obj.array
        elif isinstance(obj, np.dtype):
            out = safe_dtype(obj, _path(where))
        elif isinstance(obj, np.generic):
            out = _scalar(obj.dtype, obj.tobytes())
        elif isinstance(obj, dict):  # dict, OrderedDict, ConfigDict, Counter, defaultdict
            self.done[key] = obj
            for k in list(obj.keys()):
                if not _plain_key(k):
                    _refuse(f'{_path(where)}: a key of type {type(k).__name__} (keys are '
                            'numbers, strings or short tuples of them)')
                value = obj[k]
                new = self(value, where + (k, ), depth + 1)
                if new is not value:
                    dict.__setitem__(obj, k, new)
        elif isinstance(obj, list):
            self.done[key] = obj
            for i, value in enumerate(obj):
                obj[i] = self(value, where + (i, ), depth + 1)
        elif isinstance(obj, (tuple, set, frozenset)) and type(obj) in (tuple, set, frozenset):
            out = type(obj)(self(v, where + (i, ), depth + 1) for i, v in enumerate(obj))
        elif type(obj) is HistoryBuffer:
            extra = set(vars(obj)) - _HISTORY_FIELDS
            if extra:
                _refuse(f'{_path(where)}: HistoryBuffer with unknown fields {sorted(extra)}')
            self.done[key] = obj
            for name, value in list(vars(obj).items()):
                setattr(obj, name, self(value, where + (name, ), depth + 1))
            if not all(isinstance(getattr(obj, n, None), np.ndarray)
                       for n in ('_log_history', '_count_history')):
                _refuse(f'{_path(where)}: HistoryBuffer without numpy histories')
        elif callable(obj) and obj in (HistoryBuffer.min, HistoryBuffer.max,
                                       HistoryBuffer.current, HistoryBuffer.mean):
            pass
        elif type(obj).__module__.split('.')[0] == 'torch':
            pass  # built by torch's own allowlist (e.g. torch.Size, qscheme)
        else:
            _refuse(f'{_path(where)}: a value of type {type(obj).__module__}.{type(obj).__name__}')
        self.done[key] = out
        return out


def check_loaded(obj):
    """The loaded object with real numpy arrays in place of the placeholders, after the
    checks in the module docstring; raises :class:`CheckpointError`."""
    return _Walk()(obj, ())


# ------------------------------------------------------------------ config text
def _literal(node: ast.AST):
    """The value of a data-only expression (constants, displays, ``dict(k=v)``);
    ``ValueError`` for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(e) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float, complex)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args and all(k.arg for k in node.keywords):
        return {k.arg: _literal(k.value) for k in node.keywords}
    raise ValueError(type(node).__name__)


def inert_config_text(text: Any) -> Optional[str]:
    """The data of a stored config text, rewritten so that running it only builds that
    data: top-level ``name = <literal>`` assignments are kept (``dict(...)`` calls become
    dict displays); imports, calls, ``custom_imports``, ``_base_``, values holding MMEngine's
    ``{{ }}`` substitutions and every other statement are dropped. None if nothing is left
    or the text cannot be parsed."""
    if not isinstance(text, str) or len(text) > MAX_CONFIG_CHARS:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    lines: List[str] = []
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and
                isinstance(stmt.targets[0], ast.Name)):
            continue
        name = stmt.targets[0].id
        if name.startswith('_') or name in _RESERVED_NAMES:
            continue
        try:
            text = repr(_literal(stmt.value))
            ast.literal_eval(text)  # e.g. float('inf') prints as a name
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            continue
        if '{{' in text or '}}' in text:
            # MMEngine substitutes {{ fileDirname }}, {{$ENV:default}} and {{_base_.x}}
            # in the raw text before running it: a value could rewrite the code around it
            continue
        lines.append(f'{name} = {text}')
    return '\n'.join(lines) + '\n' if lines else None
