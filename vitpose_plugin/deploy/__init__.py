"""Inference-only switches that keep a model's outputs and methods: BatchNorm folding,
bf16 / fp16 / int8 precision, ONNX export and the onnxruntime backbone."""
from .fold_batchnorm import fold_batchnorm
from .onnx import (
                   OnnxRuntimeBackbone,
                   export_onnx,
                   onnxruntime_heatmaps,
                   onnxruntime_session,
                   restore_pytorch_backbone,
                   use_onnxruntime,
)
from .precision import (
                   PRECISIONS,
                   InferencePrecisionHook,
                   inference_precision,
                   set_inference_precision,
)

__all__ = ['PRECISIONS', 'InferencePrecisionHook', 'OnnxRuntimeBackbone', 'export_onnx',
           'fold_batchnorm', 'inference_precision', 'onnxruntime_heatmaps',
           'onnxruntime_session', 'restore_pytorch_backbone', 'set_inference_precision',
           'use_onnxruntime']
