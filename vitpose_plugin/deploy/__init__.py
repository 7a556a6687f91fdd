"""Inference-only speed-ups that keep outputs: BatchNorm folding, bf16/fp16."""
from .fold_batchnorm import fold_batchnorm
from .precision import PRECISIONS, inference_precision

__all__ = ['PRECISIONS', 'fold_batchnorm', 'inference_precision']
