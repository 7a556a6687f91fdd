"""Knowledge-token distillation (ViTPose paper, section 3.5 and Table 8).

Stage 1, :class:`KnowledgeTokenLearner`: a well-trained teacher gets one learnable
token t appended to its visual tokens; everything but t is frozen and t is trained
with the usual heatmap loss, t* = argmin_t MSE(T({t; X}), K_gt).

Stage 2, :class:`KnowledgeTokenDistiller`: the student carries t* (frozen; mapped to
the student's width by a learned Linear when the widths differ) and is trained with
``'td'``: MSE(S({t*; X}), K_gt), or ``'tod'``: that plus MSE(S({t*; X}), K_t), K_t
being the frozen teacher's heatmaps on the same augmented input. Only the student is
saved: its checkpoints load into the plain student config (which keeps t*).
"""
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict
from mmpose.registry import MODELS

from ..pose_estimators.strict_topdown import StrictTopdownPoseEstimator


def _frozen(module: torch.nn.Module):
    for p in module.parameters():
        p.requires_grad = False
    return module.eval()


def _teacher_weights(path: str) -> dict:
    ckpt = _load_checkpoint(path, map_location='cpu')
    return ckpt.get('state_dict', ckpt)


@MODELS.register_module()
class KnowledgeTokenLearner(StrictTopdownPoseEstimator):
    """Stage 1: train only the knowledge token of a frozen, well-trained teacher.

    Args:
        teacher_checkpoint: the teacher's pose checkpoint (without a token; any
            layout the plugin reads). Loaded strictly apart from the token.
        Other args as ``TopdownPoseEstimator``; the backbone needs
        ``knowledge_token_dims`` equal to its width.
    """

    def __init__(self, *args, teacher_checkpoint: Optional[str] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self.backbone, 'knowledge_token', None) is None:
            raise ValueError('KnowledgeTokenLearner needs a backbone with '
                             'knowledge_token_dims set')
        self.teacher_checkpoint = teacher_checkpoint
        for name, p in self.named_parameters():
            p.requires_grad = name == 'backbone.knowledge_token'

    def init_weights(self):
        super().init_weights()
        if self.teacher_checkpoint:
            weights = dict(_teacher_weights(self.teacher_checkpoint))
            # the teacher has no token yet: keep the token's own initialisation
            weights['backbone.knowledge_token'] = self.backbone.knowledge_token.detach().clone()
            load_state_dict(self, weights, strict=True)
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
        backbone, neck, head, ...: the student, as ``TopdownPoseEstimator``; its
            backbone carries the token (``knowledge_token_dims``,
            ``knowledge_token_file``, ``freeze_knowledge_token=True``).
        mode: ``'td'`` (token distillation) or ``'tod'`` (token + output).
        teacher: the teacher's model config (dict, or a config file whose
            ``model`` is used); needed for ``'tod'``.
        teacher_checkpoint: the teacher's weights.
        distill_loss: loss between student and teacher heatmaps
            (default ``KeypointMSELoss`` with target weights, weight 1).
    """

    def __init__(self, *args, mode: str = 'td', teacher: Union[dict, str, None] = None,
                 teacher_checkpoint: Optional[str] = None,
                 distill_loss: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if mode not in ('td', 'tod'):
            raise ValueError(f"mode must be 'td' or 'tod', got {mode!r}")
        if mode == 'tod' and teacher is None:
            raise ValueError("mode='tod' needs a teacher model config")
        self.mode = mode
        self.teacher = None
        self.teacher_checkpoint = teacher_checkpoint
        if mode == 'tod':
            if isinstance(teacher, str):
                teacher = Config.fromfile(teacher).model
            self.teacher = _frozen(MODELS.build(teacher))
            self.distill_loss = MODELS.build(distill_loss or dict(
                type='KeypointMSELoss', use_target_weight=True, loss_weight=1.0))
        # the teacher is not part of the student's checkpoints
        self._register_state_dict_hook(_drop_teacher)
        self.register_load_state_dict_post_hook(_teacher_keys_not_missing)

    def init_weights(self):
        teacher = self.teacher
        self.teacher = None  # keep the student's init from touching the teacher
        super().init_weights()
        self.teacher = teacher
        if self.teacher is not None and self.teacher_checkpoint:
            load_state_dict(self.teacher, _teacher_weights(self.teacher_checkpoint),
                            strict=True)
            print_log(f'teacher loaded from {self.teacher_checkpoint}', logger='current')

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def loss(self, inputs, data_samples) -> dict:
        feats = self.extract_feat(inputs)
        losses = self.head.loss(feats, data_samples, train_cfg=self.train_cfg)
        if self.mode == 'tod':
            with torch.no_grad():
                target = self.teacher._forward(inputs)
            pred = self.head.forward(feats)
            weights = torch.cat([d.gt_instance_labels.keypoint_weights for d in data_samples])
            losses['loss_distill'] = self.distill_loss(pred, target, weights)
        return losses


def _drop_teacher(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + 'teacher.')]:
        del state_dict[key]
    return state_dict


def _teacher_keys_not_missing(module, incompatible_keys):
    """Student checkpoints hold no teacher: its keys are not 'missing'."""
    keep = [k for k in incompatible_keys.missing_keys if not k.startswith('teacher.')]
    incompatible_keys.missing_keys[:] = keep
