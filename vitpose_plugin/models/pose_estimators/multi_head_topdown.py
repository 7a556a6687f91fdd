"""Multi-dataset top-down estimator: one shared backbone, one decoder per dataset.

ViTPose's multi-dataset training (paper Table 7) and ViTPose+ (mixture-of-experts
FFNs) train one backbone on datasets with different keypoint sets. Each sample
carries its dataset's name (``dataset_name`` in its metainfo, which MMPose's
datasets set; add it to ``PackPoseInputs(meta_keys=...)``). A sample is decoded and
supervised only by its dataset's head, and with a ViTPose+ backbone it also runs
its dataset's FFN expert. The training loss is the mean over samples, so datasets
with different keypoint counts never broadcast or pad against each other.
"""
from typing import Dict, List, Optional

import torch
from mmengine.model import ModuleDict
from mmpose.registry import MODELS

from ...datasets.metainfo import dataset_metainfo
from ..utils import fp32_heatmaps
from .strict_topdown import StrictTopdownPoseEstimator


@MODELS.register_module()
class MultiHeadTopdownPoseEstimator(StrictTopdownPoseEstimator):
    """Top-down estimator with a shared backbone (and neck) and a head per dataset.

    Args:
        backbone, neck, data_preprocessor, train_cfg, test_cfg, init_cfg,
            metainfo: as MMPose's ``TopdownPoseEstimator``.
        heads: ``{dataset_name: head_cfg}``.
        dataset_names: the datasets in index order, which also selects ViTPose+
            experts and official checkpoint heads (official order: coco, aic, mpii,
            ap10k, apt36k, coco_wholebody). A list, because MMEngine may reorder dict
            keys when it dumps a config.
        default_dataset: the head used for samples without ``dataset_name``
            (e.g. ``inference_topdown``); the first dataset when None.

    Official ViTPose+ checkpoints load directly: ``keypoint_head`` becomes the
    first dataset's head and ``associate_keypoint_heads.{i}`` the (i+1)-th.
    """

    def __init__(self, backbone: dict, heads: Dict[str, dict], dataset_names: List[str],
                 neck: Optional[dict] = None, default_dataset: Optional[str] = None, **kwargs):
        if not heads or set(heads) != set(dataset_names) or len(set(dataset_names)) != len(
                dataset_names):
            raise ValueError(f'dataset_names {list(dataset_names)} must name each of the '
                             f'heads {sorted(heads)} once')
        self.dataset_names = list(dataset_names)
        # MMPose builds (and updates old-style configs of) the first head as `head`
        super().__init__(backbone=backbone, neck=neck, head=heads[self.dataset_names[0]],
                         **kwargs)
        first = self.head
        del self.head
        self.heads = ModuleDict({name: first if i == 0 else fp32_heatmaps(MODELS.build(
            heads[name])) for i, name in enumerate(self.dataset_names)})
        self.default_dataset = default_dataset or self.dataset_names[0]
        num_experts = getattr(self.backbone, 'num_experts', 0)
        if num_experts and num_experts < len(self.dataset_names):
            raise ValueError(f'the backbone has {num_experts} experts for '
                             f'{len(self.dataset_names)} datasets {self.dataset_names}')

    @property
    def with_head(self) -> bool:
        return True

    # ---------------------------------------------------- the dataset in use
    @property
    def default_dataset(self) -> str:
        """The head (and expert) of samples without ``dataset_name``, e.g. those of
        ``inference_topdown``, the demo and ``MMPoseInferencer``."""
        return self._default_dataset

    @default_dataset.setter
    def default_dataset(self, name: str):
        if name not in self.dataset_names:
            raise KeyError(f'dataset {name!r} has no head in this model; choose one of '
                           f'{self.dataset_names}')
        self._default_dataset = name

    @property
    def dataset_meta(self) -> Optional[dict]:
        """The keypoint metainfo of ``default_dataset`` (names, skeleton, flip pairs), so
        that inference and drawing follow the head in use."""
        stored = self.__dict__.get('_dataset_meta')
        if stored is not None and stored.get('dataset_name') == self.default_dataset:
            return stored
        try:
            return dataset_metainfo(self.default_dataset)
        except KeyError:
            return stored

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]):
        self.__dict__['_dataset_meta'] = meta

    # ------------------------------------------------------------------ routing
    def dataset_indices(self, data_samples) -> torch.Tensor:
        """(B,) dataset index of every sample, from its metainfo ``dataset_name``."""
        idx = []
        for sample in data_samples or []:
            name = sample.metainfo.get('dataset_name', self.default_dataset)
            if name not in self.heads:
                raise KeyError(f'sample of dataset {name!r} ({sample.metainfo.get("img_path")})'
                               f' has no head; heads: {self.dataset_names}')
            idx.append(self.dataset_names.index(name))
        return torch.tensor(idx, dtype=torch.long)

    def extract_feat(self, inputs, dataset_idx: Optional[torch.Tensor] = None):
        if getattr(self.backbone, 'num_experts', 0):
            if dataset_idx is None:
                dataset_idx = torch.full((inputs.shape[0], ), self.dataset_names.index(
                    self.default_dataset), dtype=torch.long)
            x = self.backbone(inputs, dataset_idx.to(inputs.device))
        else:
            x = self.backbone(inputs)
        return self.neck(x) if self.with_neck else x

    def _groups(self, dataset_idx):
        for i in dataset_idx.unique().tolist():
            rows = (dataset_idx == i).nonzero()[:, 0]
            yield self.dataset_names[i], rows

    @staticmethod
    def _take(feats, rows):
        return tuple(f[rows.to(f.device)] for f in feats)

    # ------------------------------------------------------------------- modes
    def loss(self, inputs, data_samples) -> dict:
        dataset_idx = self.dataset_indices(data_samples)
        feats = self.extract_feat(inputs, dataset_idx)
        total = len(data_samples)
        losses = dict(loss_kpt=inputs.new_zeros(()), acc_pose=inputs.new_zeros(()))
        for name, rows in self._groups(dataset_idx):
            part = self.heads[name].loss(self._take(feats, rows),
                                         [data_samples[i] for i in rows],
                                         train_cfg=self.train_cfg)
            share = len(rows) / total
            losses['loss_kpt'] = losses['loss_kpt'] + share * part['loss_kpt']
            losses['acc_pose'] = losses['acc_pose'] + share * part['acc_pose']
            losses[f'mse_{name}'] = part['loss_kpt'].detach()  # logged, not summed
            losses[f'acc_pose_{name}'] = part['acc_pose']
        return losses

    def predict(self, inputs, data_samples):
        dataset_idx = self.dataset_indices(data_samples)
        feats = self.extract_feat(inputs, dataset_idx)
        flip = self.test_cfg.get('flip_test', False)
        feats_flip = self.extract_feat(inputs.flip(-1), dataset_idx) if flip else None
        for name, rows in self._groups(dataset_idx):
            group = [data_samples[i] for i in rows]
            f = self._take(feats, rows)
            if flip:
                f = [f, self._take(feats_flip, rows)]
            preds = self.heads[name].predict(f, group, test_cfg=self.test_cfg)
            instances, fields = preds if isinstance(preds, tuple) else (preds, None)
            self.add_pred_to_datasample(instances, fields, group)
        return data_samples

    def _forward(self, inputs, data_samples=None):
        """Heatmaps of the samples' datasets' heads (all of the default dataset when
        no samples are given): a tensor if one head is used, else a list per sample."""
        dataset_idx = self.dataset_indices(data_samples) if data_samples else torch.full(
            (inputs.shape[0], ), self.dataset_names.index(self.default_dataset))
        feats = self.extract_feat(inputs, dataset_idx)
        outs: List[Optional[torch.Tensor]] = [None] * inputs.shape[0]
        groups = list(self._groups(dataset_idx))
        if len(groups) == 1:
            return self.heads[groups[0][0]].forward(feats)
        for name, rows in groups:
            for r, out in zip(rows.tolist(), self.heads[name].forward(self._take(feats, rows))):
                outs[r] = out
        return outs

