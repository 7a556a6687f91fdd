"""Heatmaps leave the head in fp32, whatever precision the head ran in.

Under bf16 autocast, or FSDP with bf16 parameters, a head's last layer returns bf16
heatmaps, and MMPose's heads compute their accuracy through numpy, which has no bf16
("Got unsupported ScalarType BFloat16"). A forward hook on the head's ``final_layer``
(the last module of MMPose's ``HeatmapHead`` and of the heads that subclass it)
returns them as fp32, so the loss, the accuracy and decoding see fp32; nothing changes
for an fp32 model.
"""
import torch
import torch.nn as nn


def _to_fp32(module: nn.Module, args, output):
    if isinstance(output, torch.Tensor) and output.dtype in (torch.bfloat16, torch.float16):
        return output.float()
    return None


def fp32_heatmaps(head: nn.Module) -> nn.Module:
    """Hook ``head.final_layer`` (if it has one) to return fp32; returns ``head``."""
    layer = getattr(head, 'final_layer', None)
    if isinstance(layer, nn.Module):
        layer.register_forward_hook(_to_fp32)
    return head
