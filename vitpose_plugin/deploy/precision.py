"""Inference precision of a built pose model: fp32, bf16 / fp16 (autocast) or int8.

``set_inference_precision(model, 'bf16')`` puts forward hooks on the backbone (and the
neck): in eval mode their forward runs under ``torch.autocast`` (CPU: bf16; GPU: bf16 or
fp16) and their outputs are cast back to fp32, so the head, MMPose's decoding, flip test
and metrics run unchanged in fp32 (the heads are a few percent of ViTPose's FLOPs).
Training is never affected, and every method of the model keeps working.
``'int8'`` runs the backbone as an int8 onnxruntime graph
(:mod:`vitpose_plugin.deploy.int8`). ``'fp32'`` removes any switch.

For ``mim test`` / validation, add the hook of this module to a config::

    custom_hooks = [dict(type='InferencePrecisionHook', precision='bf16')]
"""
from typing import List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

PRECISIONS = ('fp32', 'bf16', 'fp16', 'int8')
_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
_STATE = '_vitpose_inference_precision'  # (name, hook handles) on the model


def _to_fp32(output):
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, (tuple, list)):
        return type(output)(_to_fp32(o) for o in output)
    return output


class _Autocast:
    """Forward pre-/post-hooks that run a module under autocast in eval mode."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.active: List[Optional[torch.autocast]] = []

    def enter(self, module, args):
        ctx = None
        if not module.training and args and isinstance(args[0], torch.Tensor):
            ctx = torch.autocast(device_type=args[0].device.type, dtype=self.dtype)
            ctx.__enter__()
        self.active.append(ctx)

    def exit(self, module, args, output):
        ctx = self.active.pop() if self.active else None
        if ctx is None:
            return None
        ctx.__exit__(None, None, None)
        return _to_fp32(output)


def inference_precision(model) -> str:
    """The precision set on ``model`` ('fp32' when none was)."""
    return getattr(model, _STATE, ('fp32', []))[0]


def set_inference_precision(model, precision: str, **int8_options):
    """Switch ``model`` (a built top-down estimator) to ``precision``; returns it.

    ``int8_options`` go to :func:`vitpose_plugin.deploy.int8.quantize_backbone`
    (``calibration`` is required there)."""
    if precision not in PRECISIONS:
        raise ValueError(f'inference precision {precision!r}; choose one of {PRECISIONS}')
    _, handles = getattr(model, _STATE, ('fp32', []))
    for h in handles:
        h.remove()
    from .onnx import restore_pytorch_backbone
    restore_pytorch_backbone(model)
    handles = []
    if precision in _DTYPES:
        for name in ('backbone', 'neck'):
            module = getattr(model, name, None)
            if module is not None:
                autocast = _Autocast(_DTYPES[precision])
                handles += [module.register_forward_pre_hook(autocast.enter),
                            module.register_forward_hook(autocast.exit, always_call=True)]
    elif precision == 'int8':
        from .int8 import quantize_backbone
        quantize_backbone(model, **int8_options)
    setattr(model, _STATE, (precision, handles))
    return model


@HOOKS.register_module()
class InferencePrecisionHook(Hook):
    """Validate / test the runner's model at ``precision`` (training stays fp32).

    Args:
        precision: one of :data:`PRECISIONS`.
        int8_options: for ``'int8'``, e.g. ``dict(calibration='data/coco/val2017')``.
    """

    priority = 'LOW'

    def __init__(self, precision: str = 'bf16', int8_options: Optional[dict] = None):
        if precision not in PRECISIONS:
            raise ValueError(f'inference precision {precision!r}; choose one of {PRECISIONS}')
        self.precision = precision
        self.int8_options = int8_options or {}

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _set(self, runner):
        set_inference_precision(self._model(runner), self.precision, **self.int8_options)

    def _reset(self, runner, *args, **kwargs):
        set_inference_precision(self._model(runner), 'fp32')

    before_val = before_test = _set
    after_val = after_test = _reset
