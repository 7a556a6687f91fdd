"""``precision='auto'``: the fastest inference path this machine runs within the
agreement bound of fp32 (bf16: mean OKS >= 0.995; int8: >= 0.98).

* CUDA: bf16 where the GPU has bf16 units (``torch.cuda.is_bf16_supported()``), else fp16
  (autocast).
* CPU with AMX (``amx_bf16``: Intel Xeon from Sapphire Rapids on): bf16, weights stored
  in bf16 (:mod:`vitpose_plugin.deploy.bf16`); bf16 matmuls run 6x fp32 on AMX.
* Other CPUs: int8 through onnxruntime, when calibration data or a calibrated graph is
  given (int8 cannot be made without one); else fp32. That includes CPUs with
  AVX512-BF16 but no AMX (Intel Cooper Lake, AMD Zen 4 / 5): their bf16 instructions
  run the ViTPose-B matmuls slower than fp32's FMAs (0.65-0.76x fp32 measured on a
  Sapphire Rapids core with oneDNN limited to AVX512-BF16; ``docs/performance.md``),
  and without bf16 instructions bf16 is emulated, many times slower.
"""
from typing import Optional, Tuple

import torch

# instruction-set flags (as /proc/cpuinfo names them) that decide which kernels run
ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16',
             'amx_tile', 'amx_bf16', 'amx_int8')
BF16_UNITS = ('amx_bf16', 'avx512_bf16')  # bf16 instructions: bf16 runs, not emulated
BF16_FAST = ('amx_bf16', )  # bf16 matmuls faster than fp32 (measured; the module doc)
# compiling costs tens of seconds per batch size on a 2-core CPU and saves tens of ms per
# person crop: below this many images it does not pay
COMPILE_MIN_IMAGES = 100


def cpu_flags() -> Tuple[str, ...]:
    """The flags of :data:`ISA_FLAGS` this CPU has: from /proc/cpuinfo, else (other
    systems) from torch's cpuinfo probes."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    have = set(line.split(':', 1)[1].split())
                    return tuple(f for f in ISA_FLAGS if f in have)
    except OSError:
        pass
    probes = {'avx2': '_is_avx2_supported', 'avx512f': '_is_avx512_supported',
              'avx512_vnni': '_is_vnni_supported', 'avx512_bf16': '_is_avx512_bf16_supported',
              'amx_tile': '_is_amx_tile_supported', 'amx_bf16': '_is_amx_tile_supported'}
    return tuple(f for f, probe in probes.items()
                 if getattr(torch.cpu, probe, lambda: False)())


def choose_precision(device: str = 'cpu', int8_ready: bool = False,
                     flags: Optional[Tuple[str, ...]] = None) -> Tuple[str, str]:
    """``(precision, why)`` for a model on ``device``. ``int8_ready``: calibration data
    or an int8 graph was given; ``flags``: the CPU's (default: :func:`cpu_flags`)."""
    if str(device).startswith('cuda'):
        if torch.cuda.is_bf16_supported():
            return 'bf16', 'the GPU has bf16 units'
        return 'fp16', 'the GPU has no bf16 units: fp16 autocast'
    flags = cpu_flags() if flags is None else flags
    if any(f in flags for f in BF16_FAST):
        return 'bf16', 'the CPU has AMX bf16 tiles (amx_bf16)'
    no_amx = ('the CPU has AVX512-BF16 but no AMX, where bf16 runs slower than fp32'
              if 'avx512_bf16' in flags else 'the CPU has no bf16 units')
    if int8_ready:
        return 'int8', (f"{no_amx} ({', '.join(flags) or 'no AVX2'}); int8 linear layers "
                        'through onnxruntime')
    return 'fp32', (f'{no_amx}, and int8 needs calibration data (calibration= or '
                    "onnx_file=, the demo's --calibration / --onnx-file): fp32")


def choose_compile(precision: str, device: str = 'cpu',
                   images: Optional[int] = None) -> Tuple[bool, str]:
    """``(compile, why)`` for a job of ``images`` images or frames (None: a video or
    another long job) at the resolved ``precision``."""
    from .torch_compile import compiler_available
    if not str(device).startswith('cpu'):
        return False, 'compilation is chosen automatically on CPUs only (--compile on forces it)'
    if precision != 'bf16':
        return False, f'precision {precision}: compiling pays on the bf16 path'
    if not compiler_available():
        return False, 'no C++ compiler (g++, clang++) for inductor'
    if images is not None and images < COMPILE_MIN_IMAGES:
        return False, (f'{images} image(s): compiling (tens of seconds per batch size) would '
                       f'not pay below {COMPILE_MIN_IMAGES}')
    return True, 'bf16 on this CPU, and a job long enough to repay compiling'
