"""Person identities across video frames, and temporal smoothing of their keypoints.

:class:`PoseTracker` is the greedy tracker of MMPose 0.x's pose tracking demo: each
frame's persons are matched to the live tracks by box IoU (or keypoint OKS), the most
similar pairs first; a person without a match above the threshold starts a new track
(ids are never reused), and a track unseen for more than ``max_gap`` frames is retired.

:class:`OneEuroFilter` (Casiez et al., CHI 2012) smooths each track's keypoints. It is
causal (no look-ahead, so no added latency) and adapts its cut-off to the speed: slow
jitter is averaged away while fast motion passes with little lag, which fixed moving
averages cannot do at once. A still keypoint stays exactly where it is.
"""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of boxes (N, 4) and (M, 4), [x1, y1, x2, y2]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:4] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def keypoint_oks(a: np.ndarray, b: np.ndarray, boxes_b: np.ndarray,
                 sigmas: np.ndarray) -> np.ndarray:
    """(N, M) object keypoint similarity of poses (N, K, 2) to poses (M, K, 2), the scale
    being the area of ``boxes_b`` (COCO's definition with the dataset's sigmas)."""
    area = np.clip(boxes_b[:, 2:4] - boxes_b[:, :2], 1, None).prod(-1)  # (M, )
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)  # (N, M, K)
    return np.exp(-d2 / (2 * area[None, :, None] * (2 * sigmas) ** 2)).mean(-1)


class OneEuroFilter:
    """One-Euro filter of an array signal sampled at ``fps``.

    Args:
        fps: sampling rate (frames per second).
        min_cutoff: cut-off (Hz) at rest; lower smooths more.
        beta: how fast the cut-off rises with speed; higher lags less.
        d_cutoff: cut-off (Hz) of the speed estimate.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05,
                 d_cutoff: float = 1.0):
        self.dt = 1.0 / fps
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: Optional[np.ndarray] = None
        self.dx: Optional[np.ndarray] = None

    def _alpha(self, cutoff):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self.x) / self.dt
        self.dx = self.dx + self._alpha(self.d_cutoff) * (dx - self.dx)
        alpha = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx))
        # x_prev + a (x - x_prev): exactly x_prev when the input does not move
        self.x = self.x + alpha * (x - self.x)
        return self.x.copy()


class PoseTracker:
    """Greedy frame-to-frame identity matching.

    Args:
        method: ``'iou'`` (boxes) or ``'oks'`` (keypoints, with ``sigmas``).
        threshold: least similarity that continues a track.
        max_gap: frames a track may go unseen before it is retired.
        sigmas: per-keypoint OKS sigmas (the dataset's), for ``'oks'``.
        smooth_fps: if given, each track's keypoints go through a :class:`OneEuroFilter`
            at this frame rate (``filter_args`` are its other arguments).
    """

    def __init__(self, method: str = 'iou', threshold: float = 0.3, max_gap: int = 10,
                 sigmas: Optional[Sequence[float]] = None, smooth_fps: Optional[float] = None,
                 **filter_args):
        if method not in ('iou', 'oks'):
            raise ValueError(f"tracking method {method!r}: 'iou' or 'oks'")
        if method == 'oks' and sigmas is None:
            raise ValueError("OKS tracking needs the dataset's keypoint sigmas")
        self.method, self.threshold, self.max_gap = method, threshold, max_gap
        self.sigmas = None if sigmas is None else np.asarray(sigmas, np.float64)
        self.smooth_fps, self.filter_args = smooth_fps, filter_args
        self.tracks: Dict[int, dict] = {}  # id -> last box, keypoints, frame, filter
        self.next_id = 0
        self.frame = -1

    def _similarity(self, boxes, keypoints, ids) -> np.ndarray:
        last_boxes = np.stack([self.tracks[i]['box'] for i in ids])
        if self.method == 'iou':
            return box_iou(boxes, last_boxes)
        last_kpts = np.stack([self.tracks[i]['keypoints'] for i in ids])
        return keypoint_oks(keypoints, last_kpts, last_boxes, self.sigmas)

    def update(self, boxes: np.ndarray, keypoints: np.ndarray) -> List[int]:
        """Track ids of this frame's persons (boxes (N, 4+), keypoints (N, K, 2)); with
        smoothing, ``keypoints`` is replaced in place by the filtered positions."""
        self.frame += 1
        for i in [i for i, t in self.tracks.items()
                  if self.frame - t['frame'] - 1 > self.max_gap]:
            del self.tracks[i]  # unseen for more than max_gap frames: retired
        boxes = np.asarray(boxes, np.float64)[:, :4]
        live = list(self.tracks)
        ids: List[Optional[int]] = [None] * len(boxes)
        if live and len(boxes):
            sim = self._similarity(boxes, keypoints, live)
            for flat in np.argsort(-sim, axis=None):  # most similar pairs first
                p, t = np.unravel_index(flat, sim.shape)
                if sim[p, t] < self.threshold:
                    break
                if ids[p] is None and live[t] not in ids:
                    ids[p] = live[t]
        for p, box in enumerate(boxes):
            if ids[p] is None:
                ids[p], self.next_id = self.next_id, self.next_id + 1
                self.tracks[ids[p]] = dict(
                    filter=OneEuroFilter(self.smooth_fps, **self.filter_args)
                    if self.smooth_fps else None)
            track = self.tracks[ids[p]]
            if track['filter'] is not None:
                keypoints[p] = track['filter'](keypoints[p])
            track.update(box=box, keypoints=np.asarray(keypoints[p], np.float64),
                         frame=self.frame)
        return ids
