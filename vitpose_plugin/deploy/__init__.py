"""Inference-only switches that keep a model's outputs and methods: BatchNorm folding,
bf16 / fp16 / int8 precision, torch.compile, ONNX export and the onnxruntime backbone."""
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
from .torch_compile import compile_inference, restore_eager

__all__ = ['PRECISIONS', 'InferencePrecisionHook', 'OnnxRuntimeBackbone', 'compile_inference',
           'export_onnx', 'fold_batchnorm', 'inference_precision', 'onnxruntime_heatmaps',
           'onnxruntime_session', 'restore_eager', 'restore_pytorch_backbone',
           'set_inference_precision', 'use_onnxruntime']
