"""bf16 inference with the weights stored in bf16.

``cast_to_bf16(model)`` stores the floating parameters and buffers of the backbone,
neck and head in bf16, so that no forward pays for casting them (``torch.autocast``
casts every weight on every call: most of its cost at batch 1). It keeps aside:

* the fp32 tensors themselves, so that :func:`restore_fp32` puts back exactly the fp32
  weights (training, or another precision, starts from them);
* the parameters of normalisation layers (LayerNorm, BatchNorm, GroupNorm) in fp32:
  torch's mixed-type kernels read bf16 inputs, compute the mean and variance in fp32
  and write bf16, so only the output is rounded. Softmax (fused attention or not)
  accumulates in fp32 the same way in torch's bf16 CPU and CUDA kernels.

Images enter the backbone as bf16 (a forward pre-hook), features stay bf16 through the
neck and the head, and the heatmaps leave the head's ``final_layer`` in fp32 (the hook
of :mod:`vitpose_plugin.models.utils.fp32_heatmaps`), so MMPose's flip average,
decoding and metrics run in fp32. A model in bf16 refuses to train.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _NormBase

from vitpose_plugin.models.utils import fp32_output

NORMS = (nn.LayerNorm, nn.GroupNorm, _NormBase)
PARTS = ('backbone', 'neck', 'head', 'heads')  # heads: one per dataset (ViTPose+)


def _bf16_input(module: nn.Module, args):
    if module.training:
        raise RuntimeError(f'{type(module).__name__} holds bf16 inference weights and cannot '
                           "train: call set_inference_precision(model, 'fp32') first")
    if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
        return (args[0].to(torch.bfloat16), ) + tuple(args[1:])
    return None


def cast_to_bf16(model: nn.Module) -> Tuple[List, List]:
    """Store ``model``'s backbone / neck / head(s) weights in bf16 (norm layers excepted);
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
    saved, seen = [], set()
    for part in PARTS:
        module = getattr(model, part, None)
        if module is None:
            continue
        for m in module.modules():
            if isinstance(m, NORMS):
                continue
            for p in m.parameters(recurse=False):
                if p.is_floating_point() and p.dtype != torch.bfloat16 and id(p) not in seen:
                    seen.add(id(p))
                    saved.append((p, None, p.data))
                    p.data = p.data.to(torch.bfloat16)
            for name, b in m._buffers.items():
                if b is not None and b.is_floating_point() and b.dtype != torch.bfloat16:
                    saved.append((m, name, b))
                    m._buffers[name] = b.to(torch.bfloat16)
    handles = [model.backbone.register_forward_pre_hook(_bf16_input)]
    handles += [final.register_forward_hook(fp32_output) for final in finals]
    return saved, handles


def restore_fp32(saved: List, handles: List) -> None:
    """Undo :func:`cast_to_bf16`: the very fp32 tensors come back."""
    for h in handles:
        h.remove()
    for owner, name, tensor in saved:
        if name is None:
            owner.data = tensor
        else:
            owner._buffers[name] = tensor
