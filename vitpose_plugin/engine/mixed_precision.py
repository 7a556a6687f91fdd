"""Mixed-precision training that also runs on CPUs.

MMEngine's ``AmpOptimWrapper`` (what ``mim train ... --amp`` selects) runs fp16 or bf16
autocast with a loss scaler, and refuses to start without a GPU. bf16 has fp32's range,
so it needs no loss scaling: :class:`MixedPrecisionOptimWrapper` is ``AmpOptimWrapper``
on a GPU and, on a CPU, bf16 autocast with a plain optimiser step::

    optim_wrapper = dict(type='MixedPrecisionOptimWrapper', dtype='bfloat16', optimizer=...)
"""
from contextlib import contextmanager

import torch
from mmengine.device import get_device
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` on accelerators; bf16 autocast without loss scaling on CPUs.

    Args:
        dtype: ``'bfloat16'`` (default) or, on a GPU, ``'float16'``.
        Other args as ``AmpOptimWrapper`` (``loss_scale`` applies on a GPU only).
    """

    def __init__(self, dtype: str = 'bfloat16', loss_scale='dynamic', use_fsdp: bool = False,
                 **kwargs):
        self.on_cpu = get_device() == 'cpu'
        if not self.on_cpu:
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'mixed precision on the CPU is bf16 only, got dtype={dtype!r}')
        OptimWrapper.__init__(self, **kwargs)
        self.cast_dtype = torch.bfloat16
        self.loss_scaler = None
        self._scale_update_param = None

    def backward(self, loss: torch.Tensor, **kwargs):
        if not self.on_cpu:
            return super().backward(loss, **kwargs)
        return OptimWrapper.backward(self, loss, **kwargs)

    def step(self, **kwargs):
        if not self.on_cpu:
            return super().step(**kwargs)
        return OptimWrapper.step(self, **kwargs)

    def state_dict(self) -> dict:
        return super().state_dict() if not self.on_cpu else OptimWrapper.state_dict(self)

    def load_state_dict(self, state_dict: dict):
        if not self.on_cpu:
            return super().load_state_dict(state_dict)
        state_dict.pop('loss_scaler', None)  # a GPU run's checkpoint resumed on a CPU
        return OptimWrapper.load_state_dict(self, state_dict)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        if not self.on_cpu:
            with super().optim_context(model):
                yield
            return
        with OptimWrapper.optim_context(self, model), \
                torch.autocast(device_type='cpu', dtype=torch.bfloat16):
            yield
