"""Mixed-precision training that also runs on CPUs.

MMEngine's ``AmpOptimWrapper`` (what ``mim train ... --amp`` selects) runs fp16 or bf16
autocast with a loss scaler, and refuses to start without a GPU. bf16 has fp32's range,
so it needs no loss scaling: :class:`MixedPrecisionOptimWrapper` is ``AmpOptimWrapper``
on a GPU and, on a CPU, bf16 autocast with a plain optimiser step::

    optim_wrapper = dict(type='MixedPrecisionOptimWrapper', dtype='auto', optimizer=...)

``dtype='auto'`` trains in bf16 where that pays: on GPUs (fp16 with loss scaling where
the GPU has no bf16 units) and on CPUs with AMX (``amx_bf16``); on other CPUs, whose
bf16 matmuls run slower than fp32 (AVX512-BF16 without AMX) or are emulated, it trains in
fp32 and logs what it picked. ``dtype='bfloat16'`` (the default) forces bf16
everywhere. The parameters, gradients and optimiser state stay fp32 throughout.

The ViTPose configs keep MMPose's plain ``OptimWrapper`` (so that ``--amp`` still selects
``AmpOptimWrapper`` on GPUs) and add :class:`CPUMixedPrecisionHook`, which gives that
wrapper bf16 autocast on CPUs with AMX: the CPU default where bf16 units pay.
"""
import logging
import os
from contextlib import contextmanager

import torch
from mmengine.device import get_device
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmpose.registry import HOOKS

from vitpose_plugin.deploy.auto import BF16_FAST, cpu_flags


def training_dtype(device: str) -> str:
    """What ``dtype='auto'`` trains in on ``device``: 'bfloat16', 'float16' or
    'float32'."""
    if device == 'cpu':
        return 'bfloat16' if any(f in cpu_flags() for f in BF16_FAST) else 'float32'
    if device == 'cuda' and not torch.cuda.is_bf16_supported():
        return 'float16'
    return 'bfloat16'


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` on accelerators; bf16 autocast without loss scaling on CPUs.

    Args:
        dtype: ``'bfloat16'`` (default), ``'auto'`` (see the module docstring),
            ``'float32'`` (a plain ``OptimWrapper``) or, on a GPU, ``'float16'``.
        Other args as ``AmpOptimWrapper`` (``loss_scale`` applies on a GPU only).
    """

    def __init__(self, dtype: str = 'bfloat16', loss_scale='dynamic', use_fsdp: bool = False,
                 **kwargs):
        device = get_device()
        self.on_cpu = device == 'cpu'
        if dtype == 'auto':
            dtype = training_dtype(device)
            print_log(f'MixedPrecisionOptimWrapper: dtype auto -> {dtype} on {device}' +
                      (f" (CPU flags: {', '.join(cpu_flags()) or 'none of note'})"
                       if self.on_cpu else ''), logger='current')
        self.plain = dtype in ('float32', torch.float32)
        if self.plain:
            self.on_cpu = True  # the plain OptimWrapper path below, with no autocast
        elif not self.on_cpu:
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        elif dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'mixed precision on the CPU is bf16 (or float32) only, got '
                             f'dtype={dtype!r}')
        OptimWrapper.__init__(self, **kwargs)
        self.cast_dtype = None if self.plain else torch.bfloat16
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
                torch.autocast(device_type='cpu', dtype=torch.bfloat16, enabled=not self.plain):
            yield


CPU_DTYPE_ENV = 'VITPOSE_CPU_TRAIN_DTYPE'
CPU_DTYPES = ('auto', 'bfloat16', 'float32')


@HOOKS.register_module()
class CPUMixedPrecisionHook(Hook):
    """bf16 autocast for a plain ``OptimWrapper`` training on a CPU.

    Before training, when the runner trains on a CPU with MMEngine's plain
    ``OptimWrapper``, its ``optim_context`` (the forward and loss) runs under bf16
    autocast: the same step as ``MixedPrecisionOptimWrapper`` on a CPU (fp32 weights,
    gradients and optimiser state, no loss scaling), and the same checkpoints. Other
    wrappers (``--amp``'s ``AmpOptimWrapper``, ``MixedPrecisionOptimWrapper``) and GPUs
    are left as they are; validation runs in fp32.

    Args:
        dtype: ``'auto'``: bf16 on CPUs with AMX, fp32 elsewhere (what it picked is
            logged); ``'bfloat16'``: bf16 on any CPU (emulated, slow, without bf16
            units); ``'float32'``: off. The environment variable
            ``VITPOSE_CPU_TRAIN_DTYPE``, when set, overrides it (e.g. ``float32`` to
            train a config in fp32 without editing it).
    """

    priority = 'VERY_HIGH'

    def __init__(self, dtype: str = 'auto'):
        self.dtype = self._checked(dtype, 'dtype')

    @staticmethod
    def _checked(dtype: str, where: str) -> str:
        if dtype not in CPU_DTYPES:
            raise ValueError(f'CPUMixedPrecisionHook: {where}={dtype!r}, expected one of '
                             f'{", ".join(CPU_DTYPES)}')
        return dtype

    def before_train(self, runner) -> None:
        dtype, why = self.dtype, 'the hook\'s dtype'
        forced = os.environ.get(CPU_DTYPE_ENV)
        if forced:
            dtype, why = self._checked(forced, CPU_DTYPE_ENV), f'{CPU_DTYPE_ENV}={forced}'
        wrapper, device = runner.optim_wrapper, get_device()
        if device != 'cpu' or type(wrapper) is not OptimWrapper:
            if dtype != 'auto':  # asked for, and not done: say so
                print_log(f'CPUMixedPrecisionHook: {why} has no effect: it acts on a plain '
                          f'OptimWrapper training on a CPU, this run has '
                          f'{type(wrapper).__name__} on {device}', logger='current',
                          level=logging.WARNING)
            return
        if dtype == 'auto':
            dtype = training_dtype('cpu')
            why = f"auto; CPU flags: {', '.join(cpu_flags()) or 'none of note'}"
        print_log(f'CPUMixedPrecisionHook: training in {dtype} ({why}; '
                  f'{CPU_DTYPE_ENV}=float32 or bfloat16 forces one)', logger='current')
        if dtype != 'bfloat16':
            return
        plain = wrapper.optim_context

        @contextmanager
        def bf16_context(model: torch.nn.Module):
            with plain(model), torch.autocast(device_type='cpu', dtype=torch.bfloat16):
                yield

        wrapper.optim_context = bf16_context
