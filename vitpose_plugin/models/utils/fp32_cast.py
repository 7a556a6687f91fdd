"""Half-precision tensors back to fp32: the one cast that training heatmaps and
low-precision inference share."""
import torch

HALF = (torch.bfloat16, torch.float16)


def to_fp32(output):
    """``output`` with every bf16 / fp16 tensor in it (also inside tuples, lists and
    dicts) as fp32; other tensors and values unchanged, shapes kept."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.dtype in HALF else output
    if isinstance(output, (tuple, list)):
        return type(output)(to_fp32(o) for o in output)
    if isinstance(output, dict):
        return type(output)((k, to_fp32(v)) for k, v in output.items())
    return output
