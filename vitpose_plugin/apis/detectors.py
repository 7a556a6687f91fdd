"""Person (and animal) detectors for top-down pose: MMPose's and MMDetection's presets.

==================  ==========================================  ========  ==============
preset              model                                       classes   COCO AP (box)
==================  ==========================================  ========  ==============
``rtmdet-m``        RTMDet-m, 640, person only (MMPose's         person    62.5 (person)
                    default, trained on COCO + Objects365)
``rtmdet-nano``     RTMDet-nano, 320, person only                person    40.3 (person)
``faster-rcnn``     Faster R-CNN R50-FPN, 1333x800               COCO 80   37.4 (all)
``rtmdet-m-coco``   RTMDet-m, 640, the 80 COCO classes (animals)  COCO 80   49.4 (all)
==================  ==========================================  ========  ==============

Configs come from the installed MMPose / MMDetection packages (their ``.mim`` folders);
weights are downloaded on first use.
"""
import os.path as osp
from typing import List, Optional, Sequence

import mmdet
import mmpose
import numpy as np
import torch
from mmcv.ops import nms

_MMPOSE_DET = osp.join(osp.dirname(mmpose.__file__), '.mim', 'demo', 'mmdetection_cfg')
_MMDET_CFG = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
_POSE_URL = 'https://download.openmmlab.com/mmpose/v1/projects/'
_DET_URL = 'https://download.openmmlab.com/mmdetection/'

DETECTOR_PRESETS = {
    'rtmdet-m': dict(
        config=osp.join(_MMPOSE_DET, 'rtmdet_m_640-8xb32_coco-person.py'),
        weights=_POSE_URL + 'rtmposev1/rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.pth',
        person_only=True),
    'rtmdet-nano': dict(
        config=osp.join(_MMPOSE_DET, 'rtmdet_nano_320-8xb32_coco-person.py'),
        weights=_POSE_URL + 'rtmpose/rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth',
        person_only=True),
    'faster-rcnn': dict(
        config=osp.join(_MMDET_CFG, 'faster_rcnn', 'faster-rcnn_r50_fpn_1x_coco.py'),
        weights=_DET_URL + 'v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/'
        'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth',
        person_only=False),
    'rtmdet-m-coco': dict(
        config=osp.join(_MMDET_CFG, 'rtmdet', 'rtmdet_m_8xb32-300e_coco.py'),
        weights=_DET_URL + 'v3.0/rtmdet/rtmdet_m_8xb32-300e_coco/'
        'rtmdet_m_8xb32-300e_coco_20220719_112220-229f527c.pth',
        person_only=False),
}
# COCO class indices of the animals in AP-10K / APT-36K (cat ... giraffe), as MMPose's
# inferencer uses them
COCO_ANIMALS = (15, 16, 17, 18, 19, 20, 21, 22, 23)
ANIMAL_DATASETS = ('ap10k', 'apt36k', 'animalpose', 'horse10', 'macaque')


def detector_classes(preset: str, dataset: Optional[str]) -> Sequence[int]:
    """The class indices that are persons (or animals, for an animal ``dataset``)."""
    if dataset in ANIMAL_DATASETS:
        if DETECTOR_PRESETS.get(preset, {}).get('person_only'):
            raise ValueError(f'the {preset} detector finds persons only; animal datasets need '
                             "a COCO detector: --det-model rtmdet-m-coco (or faster-rcnn)")
        return COCO_ANIMALS
    return (0, )


class _Fp32Forward:
    """A layer that runs in fp32 inside an autocast region (its input cast up); ``remove``
    gives back its own forward."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        module.forward = self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return type(self.module).forward(self.module, x.float())

    def remove(self):
        if self.module.__dict__.get('forward') is self:
            del self.module.forward


def prediction_layers(head: torch.nn.Module) -> Optional[List[torch.nn.Module]]:
    """The last layers of an RTMDet head (class scores, box distances, objectness; per
    level or shared by the levels), or None for a head of another kind."""
    if not (hasattr(head, 'rtm_cls') and hasattr(head, 'rtm_reg')):
        return None
    layers = []
    for name in ('rtm_cls', 'rtm_reg', 'rtm_obj'):
        layer = getattr(head, name, None)  # one per level (RTMDetSepBNHead) or shared
        if isinstance(layer, torch.nn.ModuleList):
            layers += list(layer)
        elif isinstance(layer, torch.nn.Module):
            layers.append(layer)
    return layers


def set_detector_precision(detector, precision: str, compile: bool = False):
    """Run ``detector``'s convolutions under bf16 / fp16 autocast (``precision`` 'bf16' /
    'fp16'; the pose model's after 'auto' resolved it); 'fp32' or 'int8' (no int8
    detector) takes the switch off. Returns ``detector``.

    The backbone and neck run in ``precision``, their features cast back to fp32. An
    RTMDet head's stacked convolutions run in ``precision`` too, its last layers (class
    scores and box distances, 1x1 convolutions) in fp32 from those features: box
    regression is then off fp32's by about 2e-4 of its range instead of the 5e-3 that
    bf16 outputs give (RTMDet-m, random weights). Other heads (Faster R-CNN's), box
    decoding and NMS run in fp32.

    ``compile``: the backbone, neck and (RTMDet, bf16 / fp16) head also run through
    ``torch.compile`` with freezing (:mod:`vitpose_plugin.deploy.torch_compile`; the
    autocast casts of the frozen weights fold away). On an AMX CPU RTMDet-m's bf16
    backbone and neck run about 4x their fp32 speed, its head about 5x."""
    from vitpose_plugin.deploy.precision import autocast_hooks
    from vitpose_plugin.deploy.torch_compile import (
        CompiledForward,
        compile_inference,
        restore_eager,
    )
    for h in getattr(detector, '_vitpose_precision_hooks', []):
        h.remove()
    restore_eager(detector)  # the head too, where it was compiled
    head = getattr(detector, 'bbox_head', None)
    handles = []
    dtypes = {'bf16': torch.bfloat16, 'fp16': torch.float16}
    if precision in dtypes:
        for name in ('backbone', 'neck'):
            module = getattr(detector, name, None)
            if module is not None:
                handles += autocast_hooks(module, dtypes[precision])
    layers = prediction_layers(head) if head is not None else None
    if precision in dtypes and layers is not None:
        handles += autocast_hooks(head, dtypes[precision])
        handles += [_Fp32Forward(m) for m in layers]
    if compile:
        compile_inference(detector)  # the backbone and neck
        if precision in dtypes and layers is not None:
            head.forward = CompiledForward(head, 'bbox_head')  # fp32: no faster compiled
    detector._vitpose_precision_hooks = handles
    return detector


def detect(detector, img: np.ndarray, classes: Sequence[int], score_thr: float,
           nms_thr: float) -> np.ndarray:
    """(N, 5) boxes [x1, y1, x2, y2, score] of ``classes`` above ``score_thr``, after NMS
    over all of them (a person found as two classes counts once)."""
    from mmdet.apis import inference_detector

    pred = inference_detector(detector, img).pred_instances
    keep = torch.isin(pred.labels, torch.as_tensor(classes, device=pred.labels.device))
    keep &= pred.scores > score_thr
    boxes, scores = pred.bboxes[keep].float().cpu(), pred.scores[keep].float().cpu()
    if not len(boxes):
        return np.zeros((0, 5), np.float32)
    dets, _ = nms(boxes, scores, nms_thr)
    return dets.numpy()
