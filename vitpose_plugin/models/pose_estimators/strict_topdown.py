"""MMPose's top-down estimator with strict, layout-converting checkpoint loading.

MMEngine loads ``load_from`` / ``--checkpoint`` / ``init_model`` weights with
``strict=False``: a checkpoint of another model loads "successfully" with a
warning and gives garbage heatmaps. This estimator converts the checkpoint's layout
once (official ViTPose, MMPose, MAE, Hugging Face, the TransPose and TokenPose
authors'; :mod:`vitpose_plugin.checkpoint.convert`), then requires the result to
match the model exactly, and raises an error naming every missing, unexpected or
mis-shaped key.
"""
from mmpose.models.pose_estimators import TopdownPoseEstimator
from mmpose.registry import MODELS

from ...checkpoint.convert import convert_on_load
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

    Takes exactly the arguments of MMPose's ``TopdownPoseEstimator``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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

    def _strict_pre_hook(self, state_dict, prefix, *args, **kwargs):
        expected = {unwrapped_name(prefix + k): v for k, v in self._expected().items()}
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
                         'count, input size)? To take only the backbone, use '
                         "backbone init_cfg=dict(type='Pretrained', prefix='backbone.', "
                         'checkpoint=...).')
            raise CheckpointMismatchError('\n'.join(lines))
