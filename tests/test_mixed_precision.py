"""MixedPrecisionOptimWrapper and CPUMixedPrecisionHook on the CPU: bf16 forced, fp32,
or picked from the CPU."""
import io
import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper

from vitpose_plugin.deploy.auto import BF16_FAST, cpu_flags
from vitpose_plugin.engine import CPUMixedPrecisionHook, MixedPrecisionOptimWrapper, mixed_precision
from vitpose_plugin.engine.mixed_precision import training_dtype


def step_dtype(dtype):
    """The dtype a linear layer computes in inside the wrapper's context, and whether
    the fp32 weights took an update."""
    layer = torch.nn.Linear(8, 8)
    before = layer.weight.detach().clone()
    wrapper = MixedPrecisionOptimWrapper(
        dtype=dtype, optimizer=torch.optim.SGD(layer.parameters(), lr=0.1))
    with wrapper.optim_context(layer):
        out = layer(torch.randn(4, 8))
    wrapper.update_params(out.float().square().mean())
    assert layer.weight.dtype == torch.float32 and not torch.equal(layer.weight, before)
    return out.dtype


def test_bf16_and_fp32_steps_on_the_cpu():
    assert step_dtype('bfloat16') == torch.bfloat16  # forced: runs on every CPU
    assert step_dtype('float32') == torch.float32
    with pytest.raises(ValueError, match='float16'):
        MixedPrecisionOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(
            torch.nn.Linear(2, 2).parameters(), lr=0.1))


def test_auto_trains_in_bf16_only_where_the_cpu_has_amx(monkeypatch):
    units = any(f in cpu_flags() for f in BF16_FAST)
    assert step_dtype('auto') == (torch.bfloat16 if units else torch.float32)
    for flags, want in ((['amx_bf16', 'avx512_bf16'], 'bfloat16'),
                        (['avx512_bf16', 'avx512_vnni'], 'float32'), ([], 'float32')):
        monkeypatch.setattr(mixed_precision, 'cpu_flags', lambda: flags)
        assert training_dtype('cpu') == want, flags


def hooked_step_dtype(wrapper, hook):
    """The dtype a linear layer computes in inside ``wrapper``'s context after ``hook``
    ran before training, and whether the fp32 weights took an update."""
    layer = wrapper.layer
    before = layer.weight.detach().clone()
    hook.before_train(SimpleNamespace(optim_wrapper=wrapper))
    with wrapper.optim_context(layer):
        out = layer(torch.randn(4, 8))
    wrapper.update_params(out.float().square().mean())
    assert layer.weight.dtype == torch.float32 and not torch.equal(layer.weight, before)
    assert not torch.is_autocast_enabled('cpu')  # the context closed its autocast
    return out.dtype


@pytest.fixture
def mmengine_log():
    """What MMEngine's current logger writes during the test (it does not propagate to
    pytest's caplog)."""
    from mmengine.logging import MMLogger
    out, logger = io.StringIO(), MMLogger.get_current_instance()
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    yield out
    logger.removeHandler(handler)


def plain_wrapper(kind=OptimWrapper):
    layer = torch.nn.Linear(8, 8)
    wrapper = kind(optimizer=torch.optim.SGD(layer.parameters(), lr=0.1))
    wrapper.layer = layer
    return wrapper


@pytest.mark.parametrize('flags,env,want', [
    (('amx_bf16', 'avx512_bf16'), None, torch.bfloat16),  # auto on an AMX CPU
    (('avx512_bf16', ), None, torch.float32),  # bf16 dot products only: slower, fp32
    ((), None, torch.float32),
    (('amx_bf16', ), 'float32', torch.float32),  # the environment turns it off
    ((), 'bfloat16', torch.bfloat16),  # or forces it (emulated without units)
])
def test_hook_gives_a_plain_wrapper_bf16_on_amx_cpus(monkeypatch, flags, env, want):
    monkeypatch.setattr(mixed_precision, 'get_device', lambda: 'cpu')  # also on GPU hosts
    monkeypatch.setattr(mixed_precision, 'cpu_flags', lambda: list(flags))
    monkeypatch.delenv(mixed_precision.CPU_DTYPE_ENV, raising=False)
    if env:
        monkeypatch.setenv(mixed_precision.CPU_DTYPE_ENV, env)
    assert hooked_step_dtype(plain_wrapper(), CPUMixedPrecisionHook()) == want


def test_hook_leaves_other_wrappers_and_refuses_unknown_dtypes(monkeypatch, mmengine_log):
    monkeypatch.setattr(mixed_precision, 'get_device', lambda: 'cpu')
    monkeypatch.setattr(mixed_precision, 'cpu_flags', lambda: ['amx_bf16'])
    monkeypatch.delenv(mixed_precision.CPU_DTYPE_ENV, raising=False)
    fp32 = plain_wrapper(lambda optimizer: MixedPrecisionOptimWrapper(
        dtype='float32', optimizer=optimizer))  # a wrapper chosen by the config
    logs = mmengine_log
    assert hooked_step_dtype(fp32, CPUMixedPrecisionHook('bfloat16')) == torch.float32
    assert ("the hook's dtype has no effect: it acts on a plain OptimWrapper training on a "
            'CPU, this run has MixedPrecisionOptimWrapper on cpu') in logs.getvalue()
    assert hooked_step_dtype(plain_wrapper(), CPUMixedPrecisionHook('float32')) == torch.float32
    assert "training in float32 (the hook's dtype" in logs.getvalue()
    monkeypatch.setattr(mixed_precision, 'get_device', lambda: 'cuda')
    monkeypatch.setenv(mixed_precision.CPU_DTYPE_ENV, 'bfloat16')
    assert hooked_step_dtype(plain_wrapper(), CPUMixedPrecisionHook()) == torch.float32
    assert 'VITPOSE_CPU_TRAIN_DTYPE=bfloat16 has no effect' in logs.getvalue()
    with pytest.raises(ValueError, match="dtype='fp16', expected one of auto, bfloat16"):
        CPUMixedPrecisionHook('fp16')
    monkeypatch.setenv(mixed_precision.CPU_DTYPE_ENV, 'bf16')
    with pytest.raises(ValueError, match="VITPOSE_CPU_TRAIN_DTYPE='bf16'"):
        CPUMixedPrecisionHook().before_train(SimpleNamespace(optim_wrapper=plain_wrapper()))


def test_vitpose_configs_carry_the_hook():
    """Every ViTPose pose config (not the MAE pre-training one) trains through the hook."""
    from mmengine.config import Config

    from helpers import CONFIGS
    configs = [p for p in (CONFIGS / 'vitpose').rglob('*.py') if 'mae' not in p.parts]
    assert len(configs) > 20
    for path in configs:
        hooks = [h['type'] for h in Config.fromfile(str(path)).get('custom_hooks', [])]
        assert 'CPUMixedPrecisionHook' in hooks, path
