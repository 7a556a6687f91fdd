"""MixedPrecisionOptimWrapper on the CPU: bf16 forced, fp32, or picked from the CPU."""
import pytest
import torch

from vitpose_plugin.deploy.auto import BF16_UNITS, cpu_flags
from vitpose_plugin.engine import MixedPrecisionOptimWrapper
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


def test_auto_trains_in_bf16_only_where_the_cpu_has_bf16_units():
    units = any(f in cpu_flags() for f in BF16_UNITS)
    assert training_dtype('cpu') == ('bfloat16' if units else 'float32')
    assert step_dtype('auto') == (torch.bfloat16 if units else torch.float32)
