"""Which image regions a keypoint attends to: TransPose's explanation figure.

``KeypointAttention`` records the last attention layer of a top-down model while MMPose
runs it (``inference_topdown``), then turns, for one keypoint of every person, the
attention row of that keypoint into a map over the image:

* TransPose (``TransPoseEncoder``) and ViTPose (``ViT``, full attention in the last
  block): the row of the visual token under the predicted keypoint;
* TokenPose (``TokenPoseHead``): the row of the keypoint's own token, over the visual
  tokens.

Only the first forward of each call is used (MMPose's flip test runs a second one on the
mirrored crops). Recording uses forward hooks and never changes a prediction.
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmpose.structures.bbox import get_udp_warp_matrix, get_warp_matrix

from ..models.backbones.attention import Attention
from ..models.backbones.vit import ViT
from ..models.backbones.window_attention import WindowAttention
from ..models.heads.tokenpose_head import TokenPoseHead
from ..models.necks.transpose_encoder import TransPoseEncoder


class KeypointAttention:
    """Context manager around the model's forward passes.

    Args:
        model: a top-down pose estimator with a ``TransPoseEncoder`` neck, a
            ``TokenPoseHead`` or a ``ViT`` backbone.

    Example::

        with KeypointAttention(model) as recorder:
            samples = inference_topdown(model, img, bboxes)
        maps = recorder.image_maps(samples, keypoint_id=9, image_shape=img.shape[:2])
    """

    def __init__(self, model):
        self.model = model
        self.records: List[Tuple[torch.Tensor, Tuple[int, int]]] = []
        head, neck, backbone = model.head, getattr(model, 'neck', None), model.backbone
        if isinstance(head, TokenPoseHead):
            self.kind, self.module = 'token', head
        elif isinstance(neck, TransPoseEncoder):
            self.kind, self.module = 'grid', neck
        elif isinstance(backbone, ViT):
            attn = backbone.layers[-1].attn
            if isinstance(attn, WindowAttention):
                raise ValueError(
                    'attention maps need full attention in the last ViT block; this config '
                    f'uses {type(attn).__name__} there (set full_attn_every or attn_type="full")')
            self.kind, self.module = 'grid', attn
        else:
            raise ValueError(
                'attention maps are drawn for TransPose (TransPoseEncoder neck), TokenPose '
                f'(TokenPoseHead) and ViTPose (ViT backbone), not for a {type(backbone).__name__}'
                f' backbone with a {type(head).__name__}')

    def _record(self, module, args, output):
        if isinstance(self.module, TokenPoseHead):  # the head's last layer: (x, attn)
            self.records.append((output[1].detach(), self.module.last_grid))
        elif isinstance(self.module, TransPoseEncoder):
            self.records.append((self.module.last_attention, tuple(output[0].shape[-2:])))
        else:  # a ViT block's Attention, called as attn(x, hw)
            self.records.append((self.module.last_attention, tuple(args[1])))

    def __enter__(self):
        self.records.clear()
        # MMPose calls head.forward() directly, so TokenPose is hooked at its last layer
        hooked = self.module.layers[-1] if isinstance(self.module, TokenPoseHead) else \
            self.module
        self._handle = hooked.register_forward_hook(self._record)
        if isinstance(self.module, Attention):
            self.module.keep_attention = True
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        if isinstance(self.module, Attention):
            self.module.keep_attention = False
        return False

    def token_maps(self, keypoint_id: int, keypoints_input: np.ndarray) -> np.ndarray:
        """(N, h, w) attention of ``keypoint_id`` over the token grid of the first
        recorded forward; ``keypoints_input``: (N, K, 2) predictions in input-crop pixels
        (used for the grid kinds)."""
        if not self.records:
            raise RuntimeError('no forward pass was recorded inside the context')
        attn, (h, w) = self.records[0]
        attn = attn.float().cpu()
        offset = attn.shape[-1] - h * w  # keypoint / knowledge tokens come first
        if self.kind == 'token':
            rows = attn[:, keypoint_id, offset:]
        else:
            in_w, in_h = self._input_size()
            x = np.clip((keypoints_input[:, keypoint_id, 0] / in_w * w).astype(int), 0, w - 1)
            y = np.clip((keypoints_input[:, keypoint_id, 1] / in_h * h).astype(int), 0, h - 1)
            query = torch.as_tensor(offset + y * w + x)
            rows = attn[torch.arange(len(query)), query, offset:]
        return rows.reshape(-1, h, w).numpy()

    def _input_size(self):
        return tuple(self.model.cfg.codec['input_size'])

    def _uses_udp(self) -> bool:
        pipeline = self.model.cfg.test_dataloader.dataset.pipeline
        return any(t.get('type') == 'TopdownAffine' and t.get('use_udp', False)
                   for t in pipeline)

    def image_maps(self, samples: Sequence, keypoint_id: int,
                   image_shape: Tuple[int, int]) -> np.ndarray:
        """(N, H, W) float maps in image pixels, each normalised to [0, 1], for the N
        persons of ``samples`` (what ``inference_topdown`` returned inside the context)."""
        in_w, in_h = self._input_size()
        warp = get_udp_warp_matrix if self._uses_udp() else get_warp_matrix
        mats, kpts = [], []
        for s in samples:
            mat = warp(np.asarray(s.metainfo['input_center'], np.float32),
                       np.asarray(s.metainfo['input_scale'], np.float32), 0.0,
                       output_size=(in_w, in_h))
            mats.append(mat)
            kpts.append(cv2.transform(s.pred_instances.keypoints[:1].astype(np.float32), mat)[0])
        grids = self.token_maps(keypoint_id, np.stack(kpts))
        out = np.zeros((len(samples), *image_shape), np.float32)
        for i, (grid, mat) in enumerate(zip(grids, mats)):
            crop = cv2.resize(grid / max(grid.max(), 1e-12), (in_w, in_h),
                              interpolation=cv2.INTER_LINEAR)
            out[i] = cv2.warpAffine(crop, mat, (image_shape[1], image_shape[0]),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        return out


def overlay_attention(rgb: np.ndarray, maps: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend the per-person maps (N, H, W) in [0, 1] onto an RGB uint8 image as a JET
    heat map whose opacity follows the attention."""
    if len(maps) == 0:
        return rgb
    heat = maps.max(0)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    weight = (alpha * heat)[..., None]
    return (rgb * (1 - weight) + colour * weight).astype(np.uint8)
