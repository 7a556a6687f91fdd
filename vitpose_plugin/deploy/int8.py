"""int8 ViTPose on CPUs: onnxruntime's static quantization, calibrated on person crops.

What is int8: the linear layers of every block (qkv, attention output projection, both
FFN layers), i.e. the ONNX MatMuls with a weight, with per-channel int8 weights and
uint8 activations (QDQ). What stays fp32, and why:

* the patch embedding: one convolution on raw pixels, 1-2% of the FLOPs, and its input
  range is set by normalisation, not by training;
* LayerNorm, softmax, GELU: element-wise or reductions, no matmul to speed up, and
  precision-sensitive (ViTs' LayerNorm inputs carry outlier channels);
* the two attention matmuls (q k^T and attention x v): both inputs are activations,
  quantizing them costs accuracy for about 8% of ViTPose-B's FLOPs;
* the decoder (head): runs in PyTorch after the backbone, 8% of ViTPose-B's FLOPs.

Activation ranges come from calibration on real person crops, cut at a percentile of
their magnitudes (``'percentile'``, the default: a few outlier activations would
otherwise stretch the range and waste the 256 levels) or their min/max (``'minmax'``).
The result runs as the model's backbone through
:class:`vitpose_plugin.deploy.onnx.OnnxRuntimeBackbone`.
"""
import json
import os
import os.path as osp
import tempfile
from typing import Iterator, Optional

import numpy as np
import torch

from .onnx import (
    OnnxRuntimeBackbone,
    export_onnx,
    needs_external_data,
    onnxruntime_session,
    restore_pytorch_backbone,
)

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
# the tools' default calibration set: the coco-mini-train people of the shared data
# beside a repository checkout ($VITPOSE_SHARED_DATA overrides where that is)
SHARED_DATA = os.environ.get('VITPOSE_SHARED_DATA', osp.join(
    osp.dirname(osp.abspath(__file__)), '..', '..', '..', 'shared', 'data'))
DEFAULT_CALIBRATION = osp.normpath(osp.join(SHARED_DATA, 'coco-mini-train',
                                            'person_keypoints_train2017.json'))
METHODS = ('percentile', 'minmax')


def add_calibration_args(parser) -> None:
    """``--calibration``, ``--num`` and ``--method``, as every int8 tool takes them."""
    parser.add_argument('--calibration', default=DEFAULT_CALIBRATION,
                        help='int8: person crops to calibrate on, a COCO json or a folder of '
                        'images with an optional bboxes.json (default: %(default)s, the '
                        "shared coco-mini-train people; $VITPOSE_SHARED_DATA moves it)")
    parser.add_argument('--num', type=int, default=256, help='int8: calibration crops, at most')
    parser.add_argument('--method', choices=METHODS, default='percentile',
                        help='int8: activation ranges from a percentile of their magnitudes '
                        'or their min / max')


def check_calibration(source: Optional[str]) -> str:
    """``source`` if it exists; else a FileNotFoundError that names it."""
    if not source or not osp.exists(source):
        raise FileNotFoundError(f'int8 calibration data {source} does not exist: pass '
                                '--calibration COCO_JSON or FOLDER of person images')
    return source


def _coco_image(ann_file: str, file_name: str) -> str:
    """A COCO json's image: beside the json, or in the image folder that COCO's layout
    puts beside it (``train2017/``, ``val2017/``, ...), as MMPose's ``data_prefix`` does."""
    root = osp.dirname(ann_file)
    candidates = [osp.join(root, file_name)] + [
        osp.join(root, d, file_name) for d in sorted(os.listdir(root))
        if osp.isdir(osp.join(root, d))]
    return next((c for c in candidates if osp.isfile(c)), candidates[0])


def _person_boxes(source: str):
    """[(image path, [x1, y1, x2, y2])] from a COCO json (person boxes of its
    annotations) or a folder of images (with ``bboxes.json`` inside, in the demo's
    --bboxes format; else the whole image)."""
    if osp.isfile(source) and source.endswith('.json'):
        try:
            with open(source) as f:
                coco = json.load(f)
            files = {im['id']: _coco_image(source, im['file_name']) for im in coco['images']}
            return [(files[a['image_id']], [a['bbox'][0], a['bbox'][1], a['bbox'][0] +
                                            a['bbox'][2], a['bbox'][1] + a['bbox'][3]])
                    for a in coco['annotations'] if a.get('num_keypoints', 1) > 0
                    and not a.get('iscrowd', 0) and a['bbox'][2] > 1 and a['bbox'][3] > 1]
        except (ValueError, RecursionError) as e:
            raise ValueError(f'int8 calibration data {source}: not a JSON file: {e}') from None
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(
                f'int8 calibration data {source}: not a COCO keypoint json: it needs '
                "'images' (id, file_name) and 'annotations' (image_id, bbox), and "
                f'{e!r} is missing or malformed') from None
    if osp.isdir(source):
        boxes = {}
        if osp.isfile(osp.join(source, 'bboxes.json')):
            with open(osp.join(source, 'bboxes.json')) as f:
                boxes = json.load(f)
        out = []
        for name in sorted(n for n in os.listdir(source)
                           if n.lower().endswith(IMAGE_EXTS)):
            for box in boxes.get(name, [None]):
                out.append((osp.join(source, name), None if box is None else box[:4]))
        return out
    raise FileNotFoundError(f'int8 calibration data {source!r}: not a COCO json or a folder '
                            'of images')


def calibration_crops(model, source: str, num: int = 256) -> Iterator[torch.Tensor]:
    """Up to ``num`` person crops of ``source`` (a COCO json, or a folder of images with
    an optional bboxes.json), each as the model's normalised input (1, 3, H, W): the test
    pipeline's crop and the data preprocessor, as ``inference_topdown`` does."""
    import cv2
    from mmengine.dataset import Compose, pseudo_collate
    boxes = _person_boxes(source)
    if not boxes:
        raise ValueError(f'int8 calibration data {source!r} holds no person box')
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    for path, box in boxes[:num]:
        img = cv2.imread(path)
        if img is None:
            raise FileNotFoundError(f'int8 calibration image {path} cannot be read')
        h, w = img.shape[:2]
        box = [0, 0, w, h] if box is None else box
        info = dict(img=img, bbox=np.asarray([box], np.float32),
                    bbox_score=np.ones(1, np.float32), **model.dataset_meta)
        data = model.data_preprocessor(pseudo_collate([pipeline(info)]), False)
        yield data['inputs'].float().cpu()


class _Reader:
    """onnxruntime's CalibrationDataReader over the crops."""

    def __init__(self, crops):
        self.crops = iter(crops)

    def get_next(self):
        crop = next(self.crops, None)
        return None if crop is None else {'images': crop.numpy()}


def quantize_backbone_graph(model, out: str, calibration: str, num: int = 256,
                            method: str = 'percentile', percentile: float = 99.99) -> str:
    """Export ``model``'s backbone to ONNX and quantize its linear layers to int8
    (QDQ, per-channel weights) with activation ranges calibrated on ``calibration``;
    writes ``out`` and returns it."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    methods = {'percentile': CalibrationMethod.Percentile, 'minmax': CalibrationMethod.MinMax}
    if method not in METHODS:
        raise ValueError(f'calibration method {method!r}: choose one of {sorted(methods)}')
    check_calibration(calibration)
    crops = list(calibration_crops(model, calibration, num))  # fails early, before export
    tmp = tempfile.mkdtemp(prefix='vitpose_int8_')
    fp32, prep = osp.join(tmp, 'backbone.onnx'), osp.join(tmp, 'backbone_prep.onnx')
    w, h = model.cfg.codec['input_size']
    export_onnx(model, fp32, (h, w), part='backbone')
    large = needs_external_data(model.backbone)
    if large:  # weights beside the graph (ViTPose-H): quantize the graph as exported
        prep = fp32
    else:
        quant_pre_process(fp32, prep, skip_symbolic_shape=True)
    graph = onnx.load(prep, load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    linear = [n.name for n in graph.node
              if n.op_type in ('MatMul', 'Gemm') and any(i in weights for i in n.input)]
    extra = {'CalibPercentile': percentile} if method == 'percentile' else {}
    quantize_static(prep, out, _Reader(crops), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_quantize=linear, calibrate_method=methods[method],
                    extra_options=extra, use_external_data_format=large)
    return out


def quantize_backbone(model, calibration: Optional[str] = None, onnx_file: Optional[str] = None,
                      num: int = 256, method: str = 'percentile', threads: Optional[int] = None):
    """Run ``model``'s backbone as int8 through onnxruntime (in place; returns it).

    Args:
        calibration: person crops to calibrate on (a COCO json, or a folder of images
            with an optional bboxes.json).
        onnx_file: an int8 graph already made by ``tools/calibrate_int8.py`` (then no
            calibration runs).
        num, method: calibration crops and method (see :func:`quantize_backbone_graph`).
    """
    if getattr(model.backbone, 'num_experts', 0):
        raise ValueError('int8: ViTPose+ backbones pick experts per sample; split the model '
                         'first (tools/split_vitpose_plus.py)')
    restore_pytorch_backbone(model)
    if onnx_file is None:
        if calibration is None:
            raise ValueError('int8 needs calibration data: person crops (a COCO json, or a '
                             'folder of images with an optional bboxes.json), or an int8 graph '
                             'from tools/calibrate_int8.py')
        onnx_file = osp.join(tempfile.mkdtemp(prefix='vitpose_int8_'), 'backbone_int8.onnx')
        quantize_backbone_graph(model, onnx_file, calibration, num, method)
    run = onnxruntime_session(onnx_file, threads)
    model.backbone = OnnxRuntimeBackbone(model.backbone, run, onnx_file)
    return model
