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
* The weights are frozen into the compiled graphs: change them (load a checkpoint,
  train) only after :func:`restore_eager` (``set_inference_precision(model, 'fp32')``).
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

from .fold_batchnorm import fold_batchnorm

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


def _slice(value, start: int, stop: int, batch: int):
    if isinstance(value, torch.Tensor):
        return value[start:stop] if value.ndim and value.shape[0] == batch else value
    if isinstance(value, (tuple, list)):
        return type(value)(_slice(v, start, stop, batch) for v in value)
    return value


def _cat(parts: list):
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    raise TypeError(f'compiled forward: cannot join outputs of type {type(first).__name__}')


def _transposed_conv_bn(module: nn.Module) -> bool:
    """Whether ``module`` holds a ConvTranspose2d followed by a BatchNorm2d (in an
    ``nn.Sequential``, the pattern :func:`fold_batchnorm` folds)."""
    for seq in module.modules():
        if isinstance(seq, nn.Sequential):
            layers = list(seq)
            if any(isinstance(a, nn.ConvTranspose2d) and isinstance(b, nn.BatchNorm2d)
                   for a, b in zip(layers, layers[1:])):
                return True
    return False


class CompiledForward:
    """A module's forward, compiled with freezing for no-grad eval calls.

    Args:
        module: the module whose ``forward`` this replaces.
        strict: raise when compiling fails (default: warn and run eagerly).
    """

    def __init__(self, module: nn.Module, strict: bool = False):
        self.module = module
        self.eager = module.forward  # the bound forward of the class
        target = module
        if _transposed_conv_bn(module):  # not inductor's folding (see the module doc)
            target = copy.deepcopy(module)
            fold_batchnorm(target)
        self.compiled = torch.compile(target.forward, dynamic=False)
        self.strict = strict
        self.error = None
        self.sizes = set()  # chunk sizes compiled so far

    def _run(self, args, kwargs):
        from torch._inductor import config
        with config.patch(freezing=True):
            return self.compiled(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        batch = _batch(args[0]) if args else None
        if (self.module.training or torch.is_grad_enabled() or self.error is not None
                or batch is None or batch == 0):
            return self.eager(*args, **kwargs)
        try:
            sizes = chunks(batch)
            if len(sizes) == 1:
                out = self._run(args, kwargs)
            else:
                parts, start = [], 0
                for size in sizes:
                    stop = start + size
                    parts.append(self._run(_slice(args, start, stop, batch),
                                           _slice(kwargs, start, stop, batch)
                                           if kwargs else {}))
                    start = stop
                out = _cat(parts)
            self.sizes.update(sizes)
            return out
        except Exception as e:
            if self.strict:
                raise
            self.error = e
            print_log(f'torch.compile of {type(self.module).__name__} failed '
                      f'({type(e).__name__}: {str(e)[:300]}); it runs eagerly',
                      logger='current', level=30)
            return self.eager(*args, **kwargs)


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
    if model.training:
        raise ValueError('compile_inference: call model.eval() first; only inference '
                         'runs compiled')
    device = next(model.parameters()).device
    if device.type == 'cpu' and not compiler_available():
        raise RuntimeError('torch.compile on a CPU needs a C++ compiler (g++ or clang++ on '
                           'PATH, or CXX / torch._inductor.config.cpp.cxx); none was found')
    for module in _parts(model).values():
        if isinstance(module.__dict__.get('forward'), CompiledForward):
            continue
        module.forward = CompiledForward(module, strict)
    return lambda: restore_eager(model)


def restore_eager(model: nn.Module) -> None:
    """Give back the modules' own forwards (and drop the compiled graphs)."""
    for module in _parts(model).values():
        if isinstance(module.__dict__.get('forward'), CompiledForward):
            del module.forward


def compiled_sizes(model: nn.Module) -> Dict[str, List[int]]:
    """Which chunk sizes each compiled part has compiled so far."""
    return {name: sorted(m.forward.sizes) for name, m in _parts(model).items()
            if isinstance(m.__dict__.get('forward'), CompiledForward)}
