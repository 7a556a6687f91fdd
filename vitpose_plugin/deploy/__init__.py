"""Inference-only speed-ups that keep outputs: BatchNorm folding, bf16/fp16, ONNX /
onnxruntime."""
from .fold_batchnorm import fold_batchnorm
from .onnx import export_onnx, onnxruntime_heatmaps, use_onnxruntime
from .precision import PRECISIONS, inference_precision

__all__ = ['PRECISIONS', 'export_onnx', 'fold_batchnorm', 'inference_precision',
           'onnxruntime_heatmaps', 'use_onnxruntime']
