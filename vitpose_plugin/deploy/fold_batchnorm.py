"""Fold eval-mode BatchNorm into the (transposed) convolution before it."""
import torch
import torch.nn as nn


@torch.no_grad()
def _fold(conv: nn.Module, bn: nn.BatchNorm2d):
    """Computed in fp32; the folded weight and bias keep the convolution's dtype (a
    bf16 convolution stays bf16)."""
    scale = bn.weight.float() / torch.sqrt(bn.running_var.float() + bn.eps)  # per output
    bias = conv.bias.float() if conv.bias is not None else torch.zeros_like(scale)
    if isinstance(conv, nn.ConvTranspose2d):  # weight (in, out/groups, kh, kw)
        scale_w = scale.view(1, -1, 1, 1)
    else:  # weight (out, in/groups, kh, kw)
        scale_w = scale.view(-1, 1, 1, 1)
    conv.weight.copy_(conv.weight.float() * scale_w)
    new_bias = (bias - bn.running_mean.float()) * scale + bn.bias.float()
    conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))


def foldable_pairs(model: nn.Module):
    """``(sequential, conv name, bn name)`` for every ``(Conv2d | ConvTranspose2d,
    BatchNorm2d)`` pair that follows each other in an ``nn.Sequential`` of ``model`` and
    can be folded (running statistics, one group)."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(
                    bn, nn.BatchNorm2d) and bn.track_running_stats and conv.groups == 1:
                yield seq, a, b


def fold_batchnorm(model: nn.Module) -> int:
    """Replace every pair of :func:`foldable_pairs` (e.g. the classic decoder's
    deconvolutions and their BNs) by the convolution with the BN folded in; the BN
    becomes ``nn.Identity``.

    For inference only (the model should be in eval mode; running statistics are
    used). Fold before ``set_inference_precision``: folding a model already switched to
    bf16 works (the folded weights stay bf16) but cannot be undone by switching back to
    fp32, so it is only for copies. Returns the number of folded layers.
    """
    pairs = list(foldable_pairs(model))
    for seq, a, b in pairs:
        _fold(seq._modules[a], seq._modules[b])
        seq._modules[b] = nn.Identity()
    return len(pairs)
