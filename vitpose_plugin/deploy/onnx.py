"""ONNX: export a top-down pose network, and run its backbone under onnxruntime inside
MMPose.

``export_onnx(model, out, (H, W))`` writes the whole network, images (B, 3, H, W) ->
heatmaps (B, K, H/4, W/4), for deployment elsewhere; ``part='backbone'`` writes the
backbone alone, images -> its feature maps. Both have a dynamic batch axis.

``use_onnxruntime(model)`` wraps ``model.backbone`` in :class:`OnnxRuntimeBackbone`: in
eval mode without gradients its forward is an onnxruntime session of the backbone
graph; in training, or with gradients, it is the PyTorch backbone. The neck, head, flip
test and decoding stay PyTorch / MMPose, state dicts keep their keys, and every method
of the model (``loss`` included) keeps working. ``restore_pytorch_backbone(model)``
takes the wrapper off.
"""
import os.path as osp
import tempfile
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn


class Network(nn.Module):
    """The pose model as images -> heatmaps (``model._forward``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model._forward(images)


class Backbone(nn.Module):
    """The pose model's backbone as images -> feature maps."""

    def __init__(self, model):
        super().__init__()
        self.backbone = model.backbone

    def forward(self, images):
        return tuple(self.backbone(images))


def export_onnx(model, out: str, input_size: Sequence[int], opset: int = 18,
                part: str = 'network') -> nn.Module:
    """Write ``model`` (built by ``init_model``; eval mode) to ``out``: ``part`` is
    ``'network'`` (heatmaps) or ``'backbone'`` (feature maps); ``input_size`` is (H, W).
    Returns the exported module."""
    if part not in ('network', 'backbone'):
        raise ValueError(f"part={part!r}: 'network' or 'backbone'")
    if getattr(model.backbone, 'num_experts', 0):
        raise ValueError('ViTPose+ backbones pick experts per sample; export a plain ViTPose '
                         '(tools/split_vitpose_plus.py) instead')
    net = (Network(model) if part == 'network' else Backbone(model)).eval()
    h, w = input_size
    example = torch.randn(2, 3, h, w, device=next(model.parameters()).device)
    with torch.no_grad():
        outputs = net(example)
    names = ['heatmaps'] if part == 'network' else [f'feat{i}' for i in range(len(outputs))]
    batch = torch.export.Dim('batch', min=1, max=1024)
    torch.onnx.export(net, (example, ), out, input_names=['images'], output_names=names,
                      dynamic_shapes={'images': {0: batch}}, opset_version=opset,
                      dynamo=True, verbose=False, external_data=needs_external_data(net))
    return net


def needs_external_data(module: nn.Module) -> bool:
    """Whether ONNX must keep the weights beside the graph (protobuf's 2 GB limit; e.g.
    ViTPose-H); smaller graphs are one self-contained file."""
    return sum(p.numel() * p.element_size() for p in module.parameters()) > 1.8e9


def onnxruntime_session(onnx_file: str, threads: Optional[int] = None,
                        providers: Sequence[str] = ('CPUExecutionProvider', ),
                        optimization: str = 'all') -> Callable:
    """An onnxruntime session of a graph from :func:`export_onnx` as a function from
    images (B, 3, H, W) to a tuple of fp32 tensors on the images' device.

    ``threads``: intra-op threads, default torch's (one per physical core); operators
    run one after another (sequential execution, one inter-op thread), and the threads
    sleep instead of spinning when idle: the head, flip and decoding run in PyTorch
    between two onnxruntime calls, on the same cores, and spinning onnxruntime threads
    slowed them and swung batch-1 times run to run. ``optimization``: onnxruntime's
    graph optimisation level ('basic', 'extended', 'all')."""
    import onnxruntime as ort
    if not osp.isfile(onnx_file):
        raise FileNotFoundError(f'ONNX file {onnx_file} does not exist')
    levels = {'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              'extended': ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    opts.graph_optimization_level = levels[optimization]
    session = ort.InferenceSession(onnx_file, opts, providers=list(providers))

    def run(images: torch.Tensor):
        outs = session.run(None, {'images': images.float().cpu().numpy()})
        return tuple(torch.from_numpy(o).to(images.device) for o in outs)

    run.output_names = [o.name for o in session.get_outputs()]
    run.session = session
    return run


def onnxruntime_heatmaps(onnx_file: str, threads: Optional[int] = None,
                         providers: Sequence[str] = ('CPUExecutionProvider', )) -> Callable:
    """images -> heatmaps with a whole-network graph (``part='network'``)."""
    run = onnxruntime_session(onnx_file, threads, providers)
    return lambda images: run(images)[0]


class OnnxRuntimeBackbone(nn.Module):
    """A backbone whose eval-mode, gradient-free forward is an onnxruntime session.

    The PyTorch backbone stays inside (``module``) and runs whenever the wrapper is in
    training mode or gradients are enabled. ``state_dict`` / ``load_state_dict`` use
    the backbone's own keys, and attributes not found here are the backbone's.
    """

    def __init__(self, module: nn.Module, run: Callable, onnx_file: str):
        super().__init__()
        self.module = module
        self.run = run
        self.onnx_file = onnx_file
        self.calls = 0  # onnxruntime runs so far
        self.train(module.training)
        self._register_state_dict_hook(self._unwrap_keys)
        self._register_load_state_dict_pre_hook(self._wrap_keys)

    def forward(self, x, *args, **kwargs):
        if self.training or torch.is_grad_enabled():
            return self.module(x, *args, **kwargs)
        self.calls += 1
        return self.run(x)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get('_modules', {}).get('module')
            if inner is None:
                raise
            return getattr(inner, name)

    @staticmethod
    def _unwrap_keys(module, state_dict, prefix, local_metadata):
        inner = prefix + 'module.'
        for key in [k for k in state_dict if k.startswith(inner)]:
            state_dict[prefix + key[len(inner):]] = state_dict.pop(key)
        return state_dict

    @staticmethod
    def _wrap_keys(state_dict, prefix, *args):
        for key in [k for k in state_dict if k.startswith(prefix)
                    and not k.startswith(prefix + 'module.')]:
            state_dict[prefix + 'module.' + key[len(prefix):]] = state_dict.pop(key)


def restore_pytorch_backbone(model) -> None:
    """Take an :class:`OnnxRuntimeBackbone` off ``model.backbone`` (if there is one)."""
    if isinstance(getattr(model, 'backbone', None), OnnxRuntimeBackbone):
        model.backbone = model.backbone.module


def use_onnxruntime(model, onnx_file: Optional[str] = None, threads: Optional[int] = None,
                    providers: Sequence[str] = ('CPUExecutionProvider', )):
    """Run ``model``'s backbone with onnxruntime (see the module docstring).

    Args:
        model: a top-down pose estimator (e.g. from ``init_model``); changed in place
            and returned.
        onnx_file: a backbone graph (``export_onnx(..., part='backbone')``, or
            ``tools/export_onnx.py --part backbone``); ``None`` exports one to a
            temporary file first.
        threads: onnxruntime intra-op threads (default: torch's thread count).
    """
    restore_pytorch_backbone(model)
    if onnx_file is None:
        onnx_file = osp.join(tempfile.mkdtemp(prefix='vitpose_onnx_'), 'backbone.onnx')
        w, h = model.cfg.codec['input_size']
        export_onnx(model, onnx_file, (h, w), part='backbone')
    run = onnxruntime_session(onnx_file, threads, providers)
    if run.output_names == ['heatmaps']:
        raise ValueError(f'{onnx_file} is a whole-network graph (heatmaps); the onnxruntime '
                         'backend runs the backbone graph: tools/export_onnx.py --part backbone')
    model.backbone = OnnxRuntimeBackbone(model.backbone, run, onnx_file)
    return model
