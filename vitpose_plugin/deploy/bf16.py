"""bf16 inference with the weights stored in bf16.

``cast_to_bf16(model)`` stores the weights of the matmul layers (Linear, convolutions,
transposed convolutions) of the backbone, neck and head(s) in bf16, so that no forward
pays for casting them (``torch.autocast`` casts every weight on every call: most of its
cost at batch 1). Each of those layers takes its input in bf16 (a forward pre-hook
casts an fp32 input) and returns bf16. Everything else stays fp32:

* the residual stream of the transformer: the position embedding (and other parameters
  outside those layers) stays fp32, so ``x + block(x)`` promotes to fp32 and the
  stream does not lose 8 bits per block (on a trained model's hard people, a bf16
  stream moved single keypoints by many pixels: mean OKS 0.989 against fp32 on
  OCHuman, fp32 stream 1.000);
* LayerNorm / BatchNorm / GroupNorm parameters and statistics: they read the fp32
  stream (or, in the head, bf16 features, which torch's mixed-type kernels normalise
  with fp32 mean and variance);
* softmax: torch's bf16 attention kernels accumulate in fp32;
* the heatmaps: they leave the head's ``final_layer`` in fp32 (the hook of
  :mod:`vitpose_plugin.models.utils.fp32_heatmaps`), so MMPose's flip average,
  decoding and metrics run in fp32.

The fp32 weights are kept aside, and :func:`restore_fp32` puts back exactly them
(training, or another precision, starts from them). A model in bf16 refuses to train.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.conv import _ConvNd

from vitpose_plugin.models.utils import fp32_output

MATMUL_LAYERS = (nn.Linear, _ConvNd)  # _ConvNd: Conv1d-3d and ConvTranspose1d-3d
PARTS = ('backbone', 'neck', 'head', 'heads')  # heads: one per dataset (ViTPose+)


def _bf16_input(module: nn.Module, args):
    if module.training:
        raise RuntimeError(f'{type(module).__name__} holds bf16 inference weights and cannot '
                           "train: call set_inference_precision(model, 'fp32') first")
    if args and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.float32:
        return (args[0].to(torch.bfloat16), ) + tuple(args[1:])
    return None


def cast_to_bf16(model: nn.Module) -> Tuple[List, List]:
    """Store the matmul layers' weights of ``model``'s backbone / neck / head(s) in bf16;
    returns ``(saved, handles)`` for :func:`restore_fp32`."""
    heads = getattr(model, 'heads', None)
    heads = list(heads.values()) if heads is not None else [getattr(model, 'head', None)]
    finals = []
    for head in heads:
        if head is None:
            continue
        final = getattr(head, 'final_layer', None)
        if not isinstance(final, nn.Module):
            raise ValueError(f'bf16 inference: the head {type(head).__name__} has no '
                             'final_layer to return fp32 heatmaps from; use precision fp32, '
                             'fp16 or int8')
        finals.append(final)
    saved, handles, seen = [], [], set()
    for part in PARTS:
        module = getattr(model, part, None)
        if module is None:
            continue
        for m in module.modules():
            if not isinstance(m, MATMUL_LAYERS) or id(m) in seen:
                continue
            seen.add(id(m))
            for p in m.parameters(recurse=False):
                if p.dtype == torch.float32:
                    saved.append((p, p.data))
                    p.data = p.data.to(torch.bfloat16)
            handles.append(m.register_forward_pre_hook(_bf16_input))
    handles += [final.register_forward_hook(fp32_output) for final in finals]
    return saved, handles


def restore_fp32(saved: List, handles: List) -> None:
    """Undo :func:`cast_to_bf16`: the very fp32 tensors come back."""
    for h in handles:
        h.remove()
    for param, tensor in saved:
        param.data = tensor
