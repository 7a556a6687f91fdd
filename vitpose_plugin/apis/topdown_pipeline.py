"""The top-down pipeline of the demo, stage by stage: detect, estimate, describe, draw.

Every person of a frame goes through the pose network in one batch (MMPose's
``inference_topdown``; with flip test, the flipped crops are a second batch).
``demo/topdown_demo.py`` and ``benchmarks/demo_throughput.py`` both run it.
"""
import os.path as osp
from typing import List, Optional, Sequence

import cv2
import numpy as np

from .detectors import DETECTOR_PRESETS, detect

RANDOM_BANNER = 'RANDOM WEIGHTS - NOT A REAL PREDICTION'
RANDOM_NMS_PRE = 100  # random-weight detectors: candidate boxes NMS sees per level
# identity colours (BGR), cycled by track id
PALETTE = [(255, 128, 0), (0, 200, 255), (180, 0, 255), (0, 255, 128), (255, 0, 128),
           (128, 255, 0), (0, 128, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]


class InputError(Exception):
    """An input or option that cannot be processed; the message names it."""


def load_model(what: str, init, config: str, checkpoint: Optional[str], device: str):
    """``init(config, checkpoint)`` with errors that name the file and what to do."""
    if checkpoint and '://' not in checkpoint and not osp.exists(checkpoint):
        raise InputError(f'{what} checkpoint {checkpoint} does not exist')
    if not osp.isfile(config):
        raise InputError(f'{what} config {config} does not exist')
    try:
        return init(config, checkpoint, device=device)
    except OSError as e:  # URLError / HTTPError / socket errors
        if checkpoint and '://' in checkpoint:
            raise InputError(
                f'could not download the {what} checkpoint {checkpoint}: {e}\nDownload it on a '
                f'machine with internet access and pass --{what}-checkpoint /path/to/file.pth '
                '(or --random-weights for a smoke run).') from e
        raise


def build_detector(preset: str = 'rtmdet-m', config: Optional[str] = None,
                   checkpoint: Optional[str] = None, device: str = 'cpu',
                   random_weights: bool = False):
    """An MMDetection detector: a preset of :data:`DETECTOR_PRESETS`, whose config and
    weights ``config`` / ``checkpoint`` override."""
    from mmdet.apis import init_detector
    from mmpose.utils import adapt_mmdet_pipeline
    if preset not in DETECTOR_PRESETS:
        raise InputError(f'detector preset {preset!r}: choose one of {sorted(DETECTOR_PRESETS)}')
    config = config or DETECTOR_PRESETS[preset]['config']
    checkpoint = None if random_weights else checkpoint or DETECTOR_PRESETS[preset]['weights']
    detector = load_model('det', init_detector, config, checkpoint, device)
    detector.cfg = adapt_mmdet_pipeline(detector.cfg)
    head_cfg = getattr(getattr(detector, 'bbox_head', None), 'test_cfg', None)
    if random_weights and head_cfg is not None and 'nms_pre' in head_cfg:
        # random scores saturate at 1 on every anchor: NMS over all of them (RTMDet-m:
        # 8400 at 640) took seconds a frame, for phantom boxes of which a few are kept
        head_cfg['nms_pre'] = RANDOM_NMS_PRE
    return detector


def select_dataset(pose, dataset: Optional[str]):
    """Make ``pose`` predict ``dataset``'s keypoints: a multi-head model's head (and
    ViTPose+ expert); a single-head model must already be of that dataset."""
    if dataset is None:
        return
    if hasattr(pose, 'heads'):
        try:
            pose.default_dataset = dataset
        except KeyError as e:
            raise InputError(f'--dataset: {e.args[0]}') from e
    elif pose.dataset_meta.get('dataset_name') != dataset:
        raise InputError(f'--dataset {dataset!r}: this model has one head, of '
                         f"{pose.dataset_meta.get('dataset_name')!r}; choose a multi-dataset "
                         'or ViTPose+ config for other datasets')


class TopdownPipeline:
    """Detector (or given boxes) -> pose model -> JSON-ready persons and a picture.

    Args:
        pose: a top-down pose model (``init_model``), switched as the caller wants
            (precision, backend, flip test, dataset).
        detector: an MMDetection detector, or None when boxes are given.
        det_classes: the detector's class indices to keep.
        bbox_thr, nms_thr, kpt_thr: box score threshold, box NMS IoU, least keypoint
            score drawn.
        draw_heatmap: blend the heatmaps into the picture.
        attention: ``(KeypointAttention, keypoint id)`` to overlay, or None.
        random_weights: stamp a banner on every picture.
        max_persons: keep only this many detected boxes, the highest scores first
            (None: all above ``bbox_thr``).
    """

    def __init__(self, pose, detector=None, det_classes: Sequence[int] = (0, ),
                 bbox_thr: float = 0.3, nms_thr: float = 0.3, kpt_thr: float = 0.3,
                 draw_heatmap: bool = False, attention=None, random_weights: bool = False,
                 max_persons: Optional[int] = None):
        from mmpose.registry import VISUALIZERS
        self.pose, self.detector, self.det_classes = pose, detector, tuple(det_classes)
        self.bbox_thr, self.nms_thr, self.kpt_thr = bbox_thr, nms_thr, kpt_thr
        self.draw_heatmap, self.attention = draw_heatmap, attention
        self.random_weights, self.max_persons = random_weights, max_persons
        pose.test_cfg['output_heatmaps'] = draw_heatmap
        self.visualizer = VISUALIZERS.build(dict(pose.cfg.visualizer, name='topdown_demo'))
        self.visualizer.set_dataset_meta(pose.dataset_meta)

    @property
    def keypoint_names(self) -> List[str]:
        meta = self.pose.dataset_meta
        return [meta['keypoint_id2name'][i] for i in range(meta['num_keypoints'])]

    def detect(self, img: np.ndarray) -> np.ndarray:
        """(N, 5) boxes [x1, y1, x2, y2, score]."""
        if self.detector is None:
            raise InputError('no detector: pass the boxes')
        boxes = detect(self.detector, img, self.det_classes, self.bbox_thr, self.nms_thr)
        if self.max_persons is not None:
            boxes = boxes[np.argsort(-boxes[:, 4], kind='stable')[:self.max_persons]]
        return boxes

    def estimate(self, img: np.ndarray, boxes: np.ndarray):
        """The merged pose sample of all persons (one batch), and their attention maps
        (or None); (None, None) without persons."""
        from mmpose.apis import inference_topdown
        from mmpose.structures import merge_data_samples
        if not len(boxes):  # inference_topdown treats "no boxes" as "the whole image"
            return None, None
        maps = None
        if self.attention is None:
            samples = inference_topdown(self.pose, img, boxes[:, :4])
        else:
            recorder, keypoint_id = self.attention
            with recorder:
                samples = inference_topdown(self.pose, img, boxes[:, :4])
            maps = recorder.image_maps(samples, keypoint_id, img.shape[:2])
        return merge_data_samples(samples), maps

    @staticmethod
    def persons(boxes: np.ndarray, sample, track_ids: Optional[Sequence[int]] = None):
        """JSON-ready persons: box, box score, keypoints, their scores (and track id)."""
        out = []
        for i, box in enumerate(boxes):
            inst = sample.pred_instances
            person = dict(
                bbox=[round(float(v), 2) for v in box[:4]],
                bbox_score=round(float(box[4]), 4),
                keypoints=[[round(float(x), 2), round(float(y), 2)]
                           for x, y in inst.keypoints[i]],
                keypoint_scores=[round(float(s), 4) for s in inst.keypoint_scores[i]])
            if track_ids is not None:
                person['track_id'] = int(track_ids[i])
            out.append(person)
        return out

    def draw(self, img: np.ndarray, boxes: np.ndarray, sample, maps=None,
             track_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """The picture (BGR): skeletons, boxes (coloured by identity when tracked),
        heatmaps or attention if asked, and the random-weights banner."""
        rgb = img[..., ::-1].copy()
        if maps is not None:
            from ..visualization import overlay_attention
            rgb = overlay_attention(rgb, maps)
        if sample is not None:
            self.visualizer.add_datasample('result', rgb, data_sample=sample, draw_gt=False,
                                           draw_heatmap=self.draw_heatmap, draw_bbox=False,
                                           kpt_thr=self.kpt_thr, show=False)
            drawn = self.visualizer.get_image()
            if self.draw_heatmap and drawn.shape[0] == 2 * rgb.shape[0]:
                # MMPose stacks the heatmaps under the picture; blend them onto it instead
                h = rgb.shape[0]
                drawn = cv2.addWeighted(drawn[:h], 0.6, drawn[h:], 0.4, 0)
            rgb = drawn
        vis = np.ascontiguousarray(rgb[..., ::-1])
        for i, box in enumerate(boxes):
            colour = PALETTE[track_ids[i] % len(PALETTE)] if track_ids is not None else \
                (0, 255, 0)
            x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
            cv2.rectangle(vis, (x1, y1), (x2, y2), colour, 2)
            if track_ids is not None:
                cv2.putText(vis, f'id {track_ids[i]}', (x1 + 2, max(y1 - 4, 10)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
        if self.random_weights:
            font = cv2.FONT_HERSHEY_SIMPLEX
            (tw, th), _ = cv2.getTextSize(RANDOM_BANNER, font, 1.0, 2)
            scale = min(1.0, (vis.shape[1] - 8) / tw)  # fit the banner to the image width
            cv2.rectangle(vis, (0, 0), (vis.shape[1], int(th * scale) + 10), (0, 0, 0), -1)
            cv2.putText(vis, RANDOM_BANNER, (4, int(th * scale) + 4), font, scale,
                        (0, 0, 255), max(1, round(2 * scale)))
        return vis
