"""Heatmaps leave the head in fp32, whatever precision the head ran in.

Under bf16 autocast, bf16 weights (``set_inference_precision(model, 'bf16')``) or FSDP
with bf16 parameters, a head's last layer returns bf16 heatmaps, and MMPose's heads
compute their accuracy and decode through numpy, which has no bf16 ("Got unsupported
ScalarType BFloat16"). A forward hook on the head's ``final_layer`` (the last module of
MMPose's ``HeatmapHead`` and of the heads that subclass it) returns them as fp32, so the
loss, the accuracy, the flip average and decoding see fp32; nothing changes for an fp32
model.
"""
import torch.nn as nn

from .fp32_cast import to_fp32


def fp32_output(module: nn.Module, args, output):
    """A forward hook: the module's output (tensors, tuples, lists) with bf16 / fp16
    tensors as fp32."""
    return to_fp32(output)


def fp32_heatmaps(head: nn.Module) -> nn.Module:
    """Hook ``head.final_layer`` (if it has one) to return fp32; returns ``head``."""
    layer = getattr(head, 'final_layer', None)
    if isinstance(layer, nn.Module):
        layer.register_forward_hook(fp32_output)
    return head
