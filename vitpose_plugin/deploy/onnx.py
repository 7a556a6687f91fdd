"""ONNX: export a top-down pose network and run it under onnxruntime inside MMPose.

``export_onnx`` writes images (B, 3, H, W) -> heatmaps (B, K, H/4, W/4) with a dynamic
batch axis (``model._forward``; fold BatchNorm first for a smaller graph).
``use_onnxruntime`` swaps the network of a built model for an onnxruntime session while
MMPose's preprocessing, flip test and heatmap decoding stay as they are, so
``inference_topdown``, the demo and ``mim test`` run the ONNX graph.
"""
import os.path as osp
import tempfile
from typing import Optional, Sequence

import torch


class Heatmaps(torch.nn.Module):
    """The pose model as images -> heatmaps (what gets exported)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model._forward(images)


def export_onnx(model, out: str, input_size: Sequence[int], opset: int = 18) -> Heatmaps:
    """Write ``model`` (built by ``init_model``) to ``out``; ``input_size`` is (H, W)."""
    net = Heatmaps(model).eval()
    h, w = input_size
    example = torch.randn(2, 3, h, w, device=next(model.parameters()).device)
    batch = torch.export.Dim('batch', min=1, max=1024)
    torch.onnx.export(net, (example, ), out, input_names=['images'], output_names=['heatmaps'],
                      dynamic_shapes={'images': {0: batch}}, opset_version=opset,
                      dynamo=True, verbose=False)
    return net


def onnxruntime_heatmaps(onnx_file: str, threads: Optional[int] = None,
                         providers: Sequence[str] = ('CPUExecutionProvider', )):
    """An onnxruntime session of a graph from ``export_onnx``, as a function from images
    (B, 3, H, W) to heatmaps, fp32 tensors on the images' device."""
    import onnxruntime as ort
    if not osp.isfile(onnx_file):
        raise FileNotFoundError(f'ONNX file {onnx_file} does not exist')
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    session = ort.InferenceSession(onnx_file, opts, providers=list(providers))

    def run(images: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {'images': images.float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(images.device)

    return run


def use_onnxruntime(model, onnx_file: Optional[str] = None, threads: Optional[int] = None,
                    providers: Sequence[str] = ('CPUExecutionProvider', )):
    """Run ``model``'s network (backbone, neck, head layers) with onnxruntime.

    Args:
        model: a top-down pose estimator (e.g. from ``init_model``); changed in place
            and returned.
        onnx_file: a graph written by ``export_onnx`` for this model; ``None`` exports
            one to a temporary file first.
        threads: onnxruntime intra-op threads (default: torch's thread count).
    """
    if onnx_file is None:
        onnx_file = osp.join(tempfile.mkdtemp(prefix='vitpose_onnx_'), 'pose.onnx')
        w, h = model.cfg.codec['input_size']
        export_onnx(model, onnx_file, (h, w))
    run = onnxruntime_heatmaps(onnx_file, threads, providers)

    def extract_feat(inputs):
        return (run(inputs), )

    # MMPose's predict: feats = extract_feat(inputs) [and of the flipped inputs], then
    # head.predict -> head.forward(feats) -> decode; the graph already gives heatmaps
    model.extract_feat = extract_feat
    model.head.forward = lambda feats: feats[-1]
    model.onnx_file = onnx_file
    return model
