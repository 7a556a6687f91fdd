"""MMPose's top-down estimator with strict, layout-converting checkpoint loading.

MMEngine loads ``load_from`` / ``--checkpoint`` / ``init_model`` weights with
``strict=False``: a checkpoint of another model loads "successfully" with a
warning and gives garbage heatmaps. This estimator converts the checkpoint's layout
once (official ViTPose, MMPose, MAE, Hugging Face, the TransPose and TokenPose
authors'; :mod:`vitpose_plugin.checkpoint.convert`), then requires the result to
match the model exactly, and raises an error naming every missing, unexpected or
mis-shaped key.

``reinit_mismatched=['head.final_layer']`` starts from a checkpoint of another keypoint
set: the named modules' tensors whose shapes differ from the model's keep the model's
own (freshly initialised) values, everything else loads strictly, and the log says what
was kept and what was re-initialised.
"""
from collections import Counter
from typing import Sequence

from mmengine.logging import print_log
from mmpose.models.pose_estimators import TopdownPoseEstimator
from mmpose.registry import MODELS

from ...checkpoint.convert import convert_on_load
from ...checkpoint.hf_vitpose import CONFIG_KEY as HF_CONFIG_KEY
from ...engine.fsdp import WRAPPER_NAMES, unwrapped_name
from ..utils import fp32_heatmaps


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's keys or shapes differ from the model's."""


def _listing(title, items, limit=20):
    lines = [f'  {title} ({len(items)}):'] + [f'    {x}' for x in items[:limit]]
    if len(items) > limit:
        lines.append(f'    ... and {len(items) - limit} more')
    return lines


@MODELS.register_module()
class StrictTopdownPoseEstimator(TopdownPoseEstimator):
    """``TopdownPoseEstimator`` whose checkpoints must match key for key.

    Args:
        reinit_mismatched: modules (e.g. ``['head.final_layer']``) whose tensors keep
            the model's own values where the checkpoint's have another shape (another
            keypoint count), instead of refusing the checkpoint. Their other checks and
            every other key stay strict.
        *args, **kwargs: those of MMPose's ``TopdownPoseEstimator``.
    """

    def __init__(self, *args, reinit_mismatched: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(reinit_mismatched, str):
            reinit_mismatched = [reinit_mismatched]
        self.reinit_mismatched = [m.rstrip('.') for m in reinit_mismatched]
        if self.reinit_mismatched:
            # before the conversion, which checks a Hugging Face config's label count
            self._register_load_state_dict_pre_hook(self._label_count_pre_hook)
        if 'precision' in (self.test_cfg or {}):
            raise ValueError(
                'test_cfg.precision is not read by the model: set the inference precision '
                'with vitpose_plugin.deploy.set_inference_precision(model, ...), the demo\'s '
                "--precision, or custom_hooks=[dict(type='InferencePrecisionHook', "
                "precision=...)] for mim test")
        if self.with_head:
            fp32_heatmaps(self.head)  # bf16 / fp16 training: the loss sees fp32
        # after MMPose's own hook (pre-1.0 head names), before the strict check
        convert_on_load(self)
        self._register_load_state_dict_pre_hook(self._strict_pre_hook)

    def _expected(self) -> dict:
        """``{key: shape}`` the model's state dict has; ``{key: None}`` inside FSDP.

        Inside FSDP the parameters are flat shards and ``state_dict()`` would start
        collectives, so only the names are checked (FSDP checks the shapes itself).
        """
        if not any(name.rsplit('.', 1)[-1] in WRAPPER_NAMES for name, _ in self.named_modules()):
            return {k: tuple(v.shape) for k, v in self.state_dict().items()}
        keys = {}
        for name, module in self.named_modules():
            tensors = list(module._parameters.items()) + [
                (n, b) for n, b in module._buffers.items()
                if n not in module._non_persistent_buffers_set]
            for n, t in tensors:
                if t is not None and not n.startswith('_flat_param'):
                    keys[unwrapped_name(f'{name}.{n}' if name else n)] = None
        return keys

    def _label_count_pre_hook(self, state_dict, prefix, *args, **kwargs):
        """A Hugging Face file's ``id2label`` names its keypoints; with another keypoint
        count the final layer's shapes decide (below), not the label list."""
        config = state_dict.get(prefix + HF_CONFIG_KEY)
        if isinstance(config, dict) and 'id2label' in config:
            state_dict[prefix + HF_CONFIG_KEY] = {
                k: v for k, v in config.items() if k not in ('id2label', 'label2id')}

    def _reinit(self, state_dict, prefix, expected) -> None:
        """Give the ``reinit_mismatched`` modules' mis-shaped keys the model's values;
        log what was kept and what was re-initialised."""
        for module in self.reinit_mismatched:
            if not any(k.startswith(prefix + module + '.') for k in expected):
                raise ValueError(f'reinit_mismatched: the {type(self).__name__} has no '
                                 f'module {module!r}')
        renew = {}
        for key, value in state_dict.items():
            name = unwrapped_name(key)
            shape = expected.get(name)
            if key.startswith(prefix) and shape is not None and tuple(value.shape) != shape \
                    and any(name.startswith(prefix + m + '.') for m in self.reinit_mismatched):
                renew[key] = (f'{name[len(prefix):]} (checkpoint {tuple(value.shape)}, '
                              f'model {shape})')
        if not renew:
            return
        own = {unwrapped_name(k): v for k, v in self.state_dict(prefix=prefix).items()}
        for key in renew:
            state_dict[key] = own[unwrapped_name(key)].detach().clone()
        kept = Counter('.'.join(unwrapped_name(k)[len(prefix):].split('.')[:2])
                       for k in state_dict if k.startswith(prefix) and k not in renew)
        print_log('checkpoint: re-initialised ' + ', '.join(renew.values()) + '; kept '
                  + ', '.join(f'{m} ({n} tensor{"s" * (n != 1)})'
                              for m, n in sorted(kept.items())),
                  logger='current')

    def _strict_pre_hook(self, state_dict, prefix, *args, **kwargs):
        expected = {unwrapped_name(prefix + k): v for k, v in self._expected().items()}
        if self.reinit_mismatched:
            self._reinit(state_dict, prefix, expected)
        got = {unwrapped_name(k): tuple(v.shape) for k, v in state_dict.items()
               if k.startswith(prefix)}
        missing = [k for k in expected if k not in got and not k.endswith('num_batches_tracked')]
        unexpected = [k for k in got if k not in expected]
        mismatched = [f'{k}: checkpoint {got[k]} vs model {expected[k]}'
                      for k in got if expected.get(k) not in (None, got[k])]
        if missing or unexpected or mismatched:
            lines = [f'The checkpoint does not match the {type(self).__name__} '
                     f'({type(self.backbone).__name__} backbone):']
            if missing:
                lines += _listing('missing keys', missing)
            if unexpected:
                lines += _listing('unexpected keys', unexpected)
            if mismatched:
                lines += _listing('shape mismatches', mismatched)
            lines.append('  Is it a checkpoint of this config (arch, head, keypoint '
                         'count, input size)?')
            if mismatched and all(k.startswith(prefix + 'head.final_layer.')
                                  for k in missing + unexpected + mismatched):
                lines.append("  Another keypoint count: model=dict(reinit_mismatched=["
                             "'head.final_layer']) keeps the backbone and decoder and "
                             're-initialises the final layer (docs/custom_keypoints.md).')
            else:
                lines.append("  To take only the backbone: model=dict(backbone=dict(init_cfg="
                             "dict(type='Pretrained', prefix='backbone.', checkpoint=...))) "
                             "(add _delete_=True to that init_cfg dict where the base config "
                             'sets init_cfg=None).')
            raise CheckpointMismatchError('\n'.join(lines))
