"""``torch.compile`` of a pose model's inference forward, with inductor's freezing.

:func:`compile_inference` replaces the ``forward`` of the model's backbone, neck and
head(s) by a compiled one. Inductor's freezing turns the weights into constants, so on a
CPU the Linear and convolution weights are pre-packed once for oneDNN (AMX tiles where
the CPU has them), bias, GELU and the dtype casts fuse into the matmuls, and LayerNorm,
residual adds and casts fuse into single loops. With bf16 weights
(:mod:`vitpose_plugin.deploy.bf16`) this is what takes the bf16 path near the CPU's bf16
matmul speed (``docs/performance.md``).

* Only eval-mode calls without autograd run compiled (MMPose's ``predict``, the demo,
  ``inference_topdown``); anything else runs the module's own forward.
* Graphs are compiled per batch size, on first use. A batch is cut into chunks of
  :data:`CHUNK_SIZES` (a batch of 7 runs as 4 + 1 + 1 + 1), so any number of persons
  per image uses at most three graphs per part and never pads.
* The one-time cost is compilation on the first call of each chunk size (tens of seconds
  on a 2-core CPU); inductor caches compiled code on disk (``TORCHINDUCTOR_CACHE_DIR``,
  default ``/tmp/torchinductor_$USER``), which shortens it in later processes.
* The weights are frozen into the compiled graphs, and every graph holds its own
  packed copy of them (about 0.2 GB per chunk size for ViTPose-B in bf16, 1.3 GB for
  ViTPose-H). After changing the weights (loading a checkpoint, training), compile
  again (``set_inference_precision(model, precision, compile=True)``): each
  compilation has its own graphs, never those frozen with the old weights. Move the
  model to its device before compiling.
* Calls that record attention maps (``keep_attention``) run uncompiled, and so do
  inputs with NaN or infinite values: the fused kernels do not carry them through
  (a crop with one NaN pixel gave finite heatmaps compiled, all-NaN ones eagerly).
* BatchNorm after a transposed convolution (the classic decoder's) is folded by this
  module, into a copy of the part that is compiled: inductor's own folding (torch
  2.14) scales a transposed convolution's weight along its input channels, which
  silently gives wrong heatmaps when the two counts are equal (256 -> 256 in ViTPose).
* Compiling needs a C++ compiler on CPUs (:func:`compiler_available`); if compilation
  fails the module's own forward runs and a warning names the error, unless
  ``strict=True``.
"""
import copy
import shutil
from typing import Callable, Dict, List, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .fold_batchnorm import fold_batchnorm, foldable_pairs

CHUNK_SIZES = (16, 4, 1)
PARTS = ('backbone', 'neck', 'head')


def compiler_available() -> bool:
    """Whether inductor finds the C++ compiler it builds CPU kernels with."""
    try:
        from torch._inductor import config
        names = config.cpp.cxx
        names = names if isinstance(names, (tuple, list)) else (names, )
    except (ImportError, AttributeError):
        names = ('g++', )
    return any(name is not None and shutil.which(name) for name in names) or any(
        shutil.which(name) for name in ('g++', 'clang++', 'c++'))


def chunks(batch: int, sizes: Sequence[int] = CHUNK_SIZES) -> List[int]:
    """``batch`` as a sum of ``sizes`` (descending, the last 1), largest first."""
    out = []
    for size in sizes:
        while batch >= size:
            out.append(size)
            batch -= size
    return out


def _batch(value):
    if isinstance(value, torch.Tensor):
        return value.shape[0] if value.ndim else None
    if isinstance(value, (tuple, list)) and value:
        return _batch(value[0])
    return None


_CHECKED = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _finite(value) -> bool:
    """Whether every floating-point tensor in ``value`` (tensors, tuples, lists, dicts)
    is finite (types ``isfinite`` does not take, such as float8, count as finite)."""
    if isinstance(value, torch.Tensor):
        return value.dtype not in _CHECKED or bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _slice(value, start: int, stop: int, batch: int):
    if isinstance(value, torch.Tensor):
        return value[start:stop] if value.ndim and value.shape[0] == batch else value
    if isinstance(value, (tuple, list)):
        return type(value)(_slice(v, start, stop, batch) for v in value)
    if isinstance(value, dict):  # keyword arguments, e.g. ViTPose+'s dataset_idx
        return {k: _slice(v, start, stop, batch) for k, v in value.items()}
    return value


def _cat(parts: list):
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    raise TypeError(f'compiled forward: cannot join outputs of type {type(first).__name__}')


class CompiledForward:
    """A module's forward, compiled with freezing for no-grad eval calls.

    The graphs are built on first use, each :class:`CompiledForward` with its own cache
    (``isolate_recompiles``): a model compiled again after its weights changed never
    runs graphs frozen with the old weights. ``fullgraph=True``: a part that dynamo
    cannot capture whole (e.g. ViTPose+'s expert routing, which depends on the data)
    runs its own forward, with a warning naming it, instead of a patchwork of graphs.

    Args:
        module: the module whose ``forward`` this replaces.
        name: the part's name, for messages.
        strict: raise when compiling fails (default: warn and run eagerly).
    """

    def __init__(self, module: nn.Module, name: str = '', strict: bool = False):
        self.module = module
        self.name = name or type(module).__name__
        self.strict = strict
        self.error = None
        self.sizes = set()  # chunk sizes run compiled so far
        self._compiled = None
        self._failure = None
        self._recorders = None  # built on first use (a copy's modules come later)

    def __deepcopy__(self, memo):  # a copied model compiles its own graphs
        return CompiledForward(copy.deepcopy(self.module, memo), self.name, self.strict)

    @property
    def eager(self) -> Callable:
        """The module's own forward."""
        return type(self.module).forward.__get__(self.module)

    def _build(self):
        target = self.module
        if any(isinstance(seq._modules[a], nn.ConvTranspose2d)
               for seq, a, _ in foldable_pairs(target)):  # not inductor's (module doc)
            target = copy.deepcopy(target)
            target.__dict__.pop('forward', None)
            fold_batchnorm(target)
        forward = type(target).forward.__get__(target)
        return torch.compile(forward, dynamic=False, fullgraph=True, isolate_recompiles=True,
                             recompile_limit=len(CHUNK_SIZES) + 2)

    def _run(self, size: int, args, kwargs):
        """The compiled output, or None when compiling this size failed (the caller
        then runs the eager forward, which tells a failure of the inputs from one of
        the compiler)."""
        from torch._inductor import config
        try:
            if self._compiled is None:
                self._compiled = self._build()
            # freezing must be on while dynamo traces: it then guards the parameters by
            # identity (inductor's ``options`` would freeze without those guards)
            with config.patch(freezing=True):
                out = self._compiled(*args, **kwargs)
        except Exception as e:
            if self.strict or size in self.sizes:  # compiled before: not the compiler
                raise
            self._failure = (size, e)
            return None
        self.sizes.add(size)
        return out

    def _eager_instead(self, args, kwargs):
        """After a failed compilation: the eager forward (its own error is the
        caller's, and compiling stays on); if it runs, compiling is off for good."""
        out = self.eager(*args, **kwargs)
        size, e = self._failure
        self.error = e
        print_log(f'torch.compile of {self.name} (batch {size}) failed, it runs uncompiled: '
                  f'{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}',
                  logger='current', level=30)
        return out

    def __call__(self, *args, **kwargs):
        if self._recorders is None:
            # modules that record attention maps per call (``keep_attention``): recording
            # runs eagerly, so that the maps are the whole batch's, on the model itself
            self._recorders = [m for m in self.module.modules()
                               if hasattr(m, 'keep_attention')]
        batch = _batch(args[0]) if args else None
        if (self.module.training or torch.is_grad_enabled() or self.error is not None
                or not batch or any(m.keep_attention for m in self._recorders)
                or not _finite((args, kwargs))):
            return self.eager(*args, **kwargs)
        sizes = chunks(batch)
        if len(sizes) == 1:
            out = self._run(batch, args, kwargs)
            return self._eager_instead(args, kwargs) if out is None else out
        parts, start = [], 0
        for size in sizes:
            stop = start + size
            out = self._run(size, _slice(args, start, stop, batch),
                            _slice(kwargs, start, stop, batch))
            if out is None:
                return self._eager_instead(args, kwargs)
            parts.append(out)
            start = stop
        return _cat(parts)


def _parts(model: nn.Module) -> Dict[str, nn.Module]:
    parts = {}
    for name in PARTS:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            parts[name] = module
    heads = getattr(model, 'heads', None)  # one head per dataset (ViTPose+)
    if isinstance(heads, nn.ModuleDict):
        parts.update({f'heads.{k}': v for k, v in heads.items()})
    return parts


def compile_inference(model: nn.Module, strict: bool = False) -> Callable[[], None]:
    """Compile the inference forward of ``model``'s backbone, neck and head(s); returns
    the undo (the same as :func:`restore_eager`)."""
    device = next(model.parameters()).device
    if device.type == 'cpu' and not compiler_available():
        raise RuntimeError('torch.compile on a CPU needs a C++ compiler (g++ or clang++ on '
                           'PATH, or CXX / torch._inductor.config.cpp.cxx); none was found')
    for name, module in _parts(model).items():
        if not isinstance(module.__dict__.get('forward'), CompiledForward):
            module.forward = CompiledForward(module, name, strict)
    return lambda: restore_eager(model)


def restore_eager(model: nn.Module) -> None:
    """Give back the own forward of every module of ``model`` that runs compiled (the
    parts :func:`compile_inference` compiles, or any other, e.g. a detector's head); the
    compiled graphs (and the packed weights they hold) go with the last reference to
    them."""
    for module in model.modules():
        if isinstance(module.__dict__.get('forward'), CompiledForward):
            del module.forward


def compiled_sizes(model: nn.Module) -> Dict[str, List[int]]:
    """Which chunk sizes each compiled part has run compiled so far."""
    return {name: sorted(m.forward.sizes) for name, m in _parts(model).items()
            if isinstance(m.__dict__.get('forward'), CompiledForward)}
