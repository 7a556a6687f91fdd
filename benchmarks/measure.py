"""What the benchmarks measure with: the machine, timings, FLOPs and saved memory."""
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from vitpose_plugin.deploy.auto import cpu_flags


def cpu_description() -> dict:
    """The CPU's model name, its threads and the instruction-set flags that decide which
    kernels it runs (``vitpose_plugin.deploy.auto.ISA_FLAGS``)."""
    model = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name') and model in ('unknown CPU', 'x86_64', ''):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(model=model, threads=torch.get_num_threads(), isa=list(cpu_flags()))


def cpu_line() -> str:
    d = cpu_description()
    return f"{d['model']}, {d['threads']} threads, ISA: {' '.join(d['isa']) or 'none of note'}"


def sync(device: str):
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, device='cpu', seconds: float = 3.0) -> float:
    """Seconds per call of ``fn`` (after one warm-up call), over at least ``seconds``."""
    fn()
    sync(device)
    t0, runs = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds or runs < 2:
        fn()
        runs += 1
    sync(device)
    return (time.perf_counter() - t0) / runs


def matmul_peak(device='cpu', dtype=torch.float32, n: int = 2048, seconds: float = 2.0) -> float:
    """Measured TFLOP/s of a square matmul: what 100% means on this machine."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, device, seconds) / 1e12


def gflops(fn, x) -> float:
    """Forward GFLOPs of ``fn(x)`` (one multiply-add counts as two FLOPs, torch's
    convention)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(x)
    return counter.get_total_flops() / 1e9


def saved_bytes(fn, x, params=()) -> int:
    """Bytes autograd saves for backward in ``fn(x)``, parameters excluded (they are
    saved by reference and cost nothing extra)."""
    skip = {p.data_ptr() for p in params}
    total = [0]

    def pack(t):
        if t.data_ptr() not in skip:
            total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return total[0]
