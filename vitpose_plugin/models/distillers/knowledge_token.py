"""Knowledge-token distillation (ViTPose paper, section 3.5 and Table 8).

Stage 1, :class:`KnowledgeTokenLearner`: a well-trained teacher gets one learnable
token t appended to its visual tokens; everything but t is frozen and t is trained
with the usual heatmap loss, t* = argmin_t MSE(T({Q t; X}), K_gt). t is as wide as the
student it is for; a wider teacher receives Q t, Q a fixed matrix with orthonormal
columns that does not depend on t (``ViT(knowledge_token_proj='fixed')``).

Stage 2, :class:`KnowledgeTokenDistiller`: the student carries t* itself (frozen, at its
own width: nothing of what stage 1 learned is lost on the way) and is trained with
``'td'``: MSE(S({t*; X}), K_gt),
or ``'tod'``: that plus MSE(S({t*; X}), K_t) over all heatmaps, K_t being the frozen
teacher's heatmaps on the same augmented input. The teacher is not part of the model's
modules: checkpoints hold the student only, load strictly into the distiller (for
``--resume`` and ``mim test``) and into the plain student config.
"""
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmpose.evaluation.functional import pose_pck_accuracy
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS
from mmpose.utils.tensor_utils import to_numpy

from ...checkpoint.safe_load import load_state_dict_file
from ..pose_estimators.strict_topdown import StrictTopdownPoseEstimator


def _frozen(module: torch.nn.Module):
    for p in module.parameters():
        p.requires_grad = False
    return module.eval()


@MODELS.register_module()
class KnowledgeTokenLearner(StrictTopdownPoseEstimator):
    """Stage 1: train only the knowledge token of a frozen, well-trained teacher.

    Args:
        teacher_checkpoint: the teacher's pose checkpoint (without a token; any
            layout the plugin reads). Loaded strictly apart from the token.
        Other args as ``TopdownPoseEstimator``; the backbone needs
        ``knowledge_token_dims``: the width of the student the token is for (at most
        the teacher's; a narrower token enters through the backbone's fixed map).
    """

    def __init__(self, *args, teacher_checkpoint: Optional[str] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self.backbone, 'knowledge_token', None) is None:
            raise ValueError('KnowledgeTokenLearner needs a backbone with '
                             'knowledge_token_dims set')
        if getattr(self.backbone, 'knowledge_proj', None) is not None:
            raise ValueError("KnowledgeTokenLearner needs knowledge_token_proj='fixed': "
                             "with 'learned', the teacher would see the token through a "
                             'random Linear that stage 1 never trains')
        self.teacher_checkpoint = teacher_checkpoint
        for name, p in self.named_parameters():
            p.requires_grad = name == 'backbone.knowledge_token'

    def init_weights(self):
        super().init_weights()
        if self.teacher_checkpoint:
            weights = dict(load_state_dict_file(self.teacher_checkpoint))
            # the teacher has no token yet: keep the token's own initialisation (and the
            # fixed map that hands it to the teacher)
            weights.update({k: v.detach().clone() for k, v in self.state_dict().items()
                            if k.startswith('backbone.knowledge_token')})
            self.load_state_dict(weights, strict=True)
            print_log(f'teacher loaded from {self.teacher_checkpoint}', logger='current')

    def train(self, mode: bool = True):
        super().train(mode)
        # the teacher is frozen: no dropout, drop path or BN statistics updates
        for module in self.modules():
            if module is not self and not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self


@MODELS.register_module()
class KnowledgeTokenDistiller(StrictTopdownPoseEstimator):
    """Stage 2: a student with the frozen knowledge token t*, optionally distilled
    from a frozen teacher's heatmaps.

    Args:
        backbone, neck, head, ...: the student, as ``TopdownPoseEstimator`` (a
            ``HeatmapHead``); its backbone carries the token
            (``knowledge_token_dims``: the width stage 1 learned t* at, normally the
            student's own; ``knowledge_token_file``, ``freeze_knowledge_token=True``).
        mode: ``'td'`` (token distillation) or ``'tod'`` (token + output).
        teacher: the teacher's model config (dict, or a config file whose ``model``
            is used); ``'tod'`` only.
        teacher_checkpoint: the teacher's weights (required by ``'tod'``; loaded
            strictly by ``init_weights()``, i.e. when training starts).
        distill_loss: loss between student and teacher heatmaps (default MSE over all
            heatmaps, as the paper writes it).
        distill_visible_only: weight the teacher term by the ground-truth keypoint
            weights instead (heatmaps of unlabelled keypoints then get no teacher
            signal).
    """

    def __init__(self, *args, mode: str = 'td', teacher: Union[dict, str, None] = None,
                 teacher_checkpoint: Optional[str] = None,
                 distill_loss: Optional[dict] = None, distill_visible_only: bool = False,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if mode not in ('td', 'tod'):
            raise ValueError(f"mode must be 'td' or 'tod', got {mode!r}")
        if not isinstance(self.head, HeatmapHead):
            raise TypeError(f'KnowledgeTokenDistiller needs a HeatmapHead, got '
                            f'{type(self.head).__name__}')
        self.mode = mode
        self.teacher_checkpoint = teacher_checkpoint
        self.distill_visible_only = distill_visible_only
        teacher_model = None
        if mode == 'tod':
            if teacher is None or not teacher_checkpoint:
                raise ValueError("mode='tod' needs a teacher model config and its "
                                 'teacher_checkpoint (a random teacher teaches nothing)')
            if isinstance(teacher, str):
                teacher = Config.fromfile(teacher).model
            teacher_model = _frozen(MODELS.build(teacher))
            self.distill_loss = MODELS.build(distill_loss or dict(
                type='KeypointMSELoss', use_target_weight=distill_visible_only,
                loss_weight=1.0))
        # a plain attribute, not a submodule: not saved, loaded, trained or optimised
        object.__setattr__(self, 'teacher', teacher_model)
        self._teacher_loaded = False

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half() reach the teacher
        super()._apply(fn, *args, **kwargs)
        if self.teacher is not None:
            self.teacher._apply(fn, *args, **kwargs)
        return self

    def init_weights(self):
        super().init_weights()
        if self.teacher is not None:
            self.teacher.load_state_dict(load_state_dict_file(self.teacher_checkpoint),
                                         strict=True)
            self._teacher_loaded = True
            print_log(f'teacher loaded from {self.teacher_checkpoint}', logger='current')

    def _gt_loss(self, heatmaps, data_samples) -> dict:
        """``HeatmapHead.loss`` on heatmaps the head has already computed."""
        gt = torch.stack([d.gt_fields.heatmaps for d in data_samples])
        weights = torch.cat([d.gt_instance_labels.keypoint_weights for d in data_samples])
        losses = dict(loss_kpt=self.head.loss_module(heatmaps, gt, weights))
        if self.train_cfg.get('compute_acc', True):
            _, acc, _ = pose_pck_accuracy(output=to_numpy(heatmaps), target=to_numpy(gt),
                                          mask=to_numpy(weights) > 0)
            losses['acc_pose'] = torch.tensor(acc, device=gt.device)
        return losses

    def loss(self, inputs, data_samples) -> dict:
        heatmaps = self.head.forward(self.extract_feat(inputs))  # the head runs once
        losses = self._gt_loss(heatmaps, data_samples)
        if self.mode == 'tod':
            if not self._teacher_loaded:
                raise RuntimeError('the teacher has no weights: init_weights() loads '
                                   f'{self.teacher_checkpoint} when training starts')
            self.teacher.to(inputs.device)
            with torch.no_grad():
                target = self.teacher._forward(inputs)
            weights = torch.cat([d.gt_instance_labels.keypoint_weights
                                 for d in data_samples]) if self.distill_visible_only else None
            losses['loss_distill'] = self.distill_loss(heatmaps, target, weights)
        return losses
