"""Inference precision of a built pose model: auto, fp32, bf16, fp16 or int8.

* ``'bf16'``: the backbone, neck and head weights stored in bf16, norm layers' in fp32,
  heatmaps out in fp32 (:mod:`vitpose_plugin.deploy.bf16`); the fp32 weights come back
  with ``'fp32'``.
* ``'fp16'``: the backbone and neck under ``torch.autocast`` (fp16 on a GPU; on a CPU
  torch's fp16 autocast), outputs cast back to fp32, so the head, MMPose's decoding,
  flip test and metrics run unchanged in fp32.
* ``'int8'``: the backbone as an int8 onnxruntime graph (:mod:`vitpose_plugin.deploy.int8`).
* ``'auto'``: what :func:`vitpose_plugin.deploy.auto.choose_precision` picks for the
  model's device and CPU; what it picked and why is logged.
* ``'fp32'``: removes any switch.

``compile=True`` (with fp32 or bf16) also runs the backbone, neck and head compiled by
``torch.compile`` with inductor's freezing (:mod:`vitpose_plugin.deploy.torch_compile`):
on CPUs the bf16 path's fastest form, after a one-time compilation per batch size.

Each can be forced on any machine: bf16 without bf16 units runs (emulated, slowly; a
warning says so), int8 needs onnxruntime and calibration data. The model's training
is never run in a lower precision by this switch (bf16 refuses to train).

For ``mim test`` / validation, add the hook of this module to a config::

    custom_hooks = [dict(type='InferencePrecisionHook', precision='auto')]
"""
from typing import List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from vitpose_plugin.models.utils import to_fp32

from .auto import BF16_UNITS, choose_precision, cpu_flags

PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16', 'int8')
_STATE = '_vitpose_inference_precision'  # (name, undo callables) on the model


def _first_tensor(args) -> Optional[torch.Tensor]:
    """The first positional tensor argument, also the first of a tuple or list of them
    (a detector head's feature levels)."""
    first = args[0] if args else None
    if isinstance(first, (tuple, list)) and first:
        first = first[0]
    return first if isinstance(first, torch.Tensor) else None


class _Autocast:
    """Forward pre-/post-hooks that run a module under autocast in eval mode."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.active: List[Optional[torch.autocast]] = []

    def enter(self, module, args):
        ctx, first = None, _first_tensor(args)
        if not module.training and first is not None:
            ctx = torch.autocast(device_type=first.device.type, dtype=self.dtype)
            ctx.__enter__()
        self.active.append(ctx)

    def exit(self, module, args, output):
        ctx = self.active.pop() if self.active else None
        if ctx is None:
            return None
        ctx.__exit__(None, None, None)
        return to_fp32(output)


def autocast_hooks(module, dtype: torch.dtype) -> list:
    """Run ``module``'s eval-mode forward under autocast to ``dtype``, its outputs cast
    back to fp32; returns the hook handles (``h.remove()`` undoes it)."""
    autocast = _Autocast(dtype)
    return [module.register_forward_pre_hook(autocast.enter),
            module.register_forward_hook(autocast.exit, always_call=True)]


def inference_precision(model) -> str:
    """The precision set on ``model`` ('fp32' when none was; 'auto' is resolved)."""
    return getattr(model, _STATE, ('fp32', []))[0]


def _device(model) -> str:
    param = next(model.parameters(), None)
    return 'cpu' if param is None else param.device.type


def resolve_precision(model, precision: str, **int8_options) -> str:
    """``precision``, with ``'auto'`` replaced by the choice for ``model`` (logged)."""
    if precision != 'auto':
        return precision
    int8_ready = bool(int8_options.get('calibration') or int8_options.get('onnx_file'))
    if int8_ready:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            int8_ready = False
    chosen, why = choose_precision(_device(model), int8_ready)
    print_log(f"inference precision 'auto' -> {chosen!r}: {why}", logger='current')
    return chosen


def set_inference_precision(model, precision: str, compile: bool = False,
                            **int8_options):
    """Switch ``model`` (a built top-down estimator) to ``precision``; returns it.

    ``compile``: also compile the inference forward
    (:func:`vitpose_plugin.deploy.torch_compile.compile_inference`; fp32 and bf16, and
    'auto' where it resolves to one of them). ``int8_options`` go to
    :func:`vitpose_plugin.deploy.int8.quantize_backbone` (``calibration`` or
    ``onnx_file`` is required there); with ``'auto'`` they also let it pick int8."""
    if precision not in PRECISIONS:
        raise ValueError(f'inference precision {precision!r}; choose one of {PRECISIONS}')
    from .onnx import restore_pytorch_backbone
    from .torch_compile import compile_inference, restore_eager
    restore_eager(model)  # first: the compiled graphs hold the weights undone below
    _, undo = getattr(model, _STATE, ('fp32', []))
    for fn in reversed(undo):
        fn()
    restore_pytorch_backbone(model)
    setattr(model, _STATE, ('fp32', []))
    precision = resolve_precision(model, precision, **int8_options)
    if compile and precision not in ('fp32', 'bf16'):
        raise ValueError(f'compile=True runs with precision fp32 or bf16, not {precision!r} '
                         '(int8 runs in onnxruntime, fp16 under autocast)')
    undo = []
    if precision == 'bf16':
        from .bf16 import cast_to_bf16, restore_fp32
        if _device(model) == 'cpu' and not any(f in cpu_flags() for f in BF16_UNITS):
            print_log('bf16 inference on a CPU without bf16 units (amx_bf16, avx512_bf16): '
                      'it runs, emulated, several times slower than fp32', logger='current',
                      level=30)
        saved, handles = cast_to_bf16(model)
        undo.append(lambda: restore_fp32(saved, handles))
    elif precision == 'fp16':
        for name in ('backbone', 'neck'):
            module = getattr(model, name, None)
            if module is not None:
                undo += [h.remove for h in autocast_hooks(module, torch.float16)]
    elif precision == 'int8':
        from .int8 import quantize_backbone
        quantize_backbone(model, **int8_options)
    if compile:  # after the casts: it freezes the weights; undone by restore_eager above
        compile_inference(model)
    setattr(model, _STATE, (precision, undo))
    return model


@HOOKS.register_module()
class InferencePrecisionHook(Hook):
    """Validate / test the runner's model at ``precision`` (training stays fp32).

    Args:
        precision: one of :data:`PRECISIONS`.
        compile: also run the model compiled (``set_inference_precision``'s
            ``compile``); it is compiled again at every validation, since training
            changes the weights it freezes.
        int8_options: for ``'int8'``, e.g. ``dict(calibration='data/coco/val2017')``.
    """

    priority = 'LOW'

    def __init__(self, precision: str = 'bf16', compile: bool = False,
                 int8_options: Optional[dict] = None):
        if precision not in PRECISIONS:
            raise ValueError(f'inference precision {precision!r}; choose one of {PRECISIONS}')
        self.precision = precision
        self.compile = compile
        self.int8_options = int8_options or {}

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _set(self, runner):
        set_inference_precision(self._model(runner), self.precision, self.compile,
                                **self.int8_options)

    def _reset(self, runner, *args, **kwargs):
        set_inference_precision(self._model(runner), 'fp32')

    before_val = before_test = _set
    after_val = after_test = _reset
