"""Layer-wise lr decay that also holds when FSDP has sharded the model.

MMPose's ``LayerDecayOptimWrapperConstructor`` reads each parameter's name (its layer)
and shape (1-D parameters get no weight decay). Under MMEngine's ``FSDPStrategy`` with
``use_orig_params=True`` the optimiser is built after wrapping, when every parameter is
a flat 1-D shard and names carry ``_fsdp_wrapped_module``: every parameter lands in a
no-decay group, so weight decay silently drops to 0 everywhere.
:class:`ShardedLayerDecayOptimWrapperConstructor` hands MMPose's rule the names and
shapes of the unwrapped model, and is the same as MMPose's without FSDP::

    optim_wrapper = dict(constructor='ShardedLayerDecayOptimWrapperConstructor',
                         paramwise_cfg=dict(num_layers=24, layer_decay_rate=0.8), ...)
"""
from typing import List

import torch.nn as nn
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpose.engine.optim_wrappers import LayerDecayOptimWrapperConstructor

from .fsdp import unwrapped_name


class _Param:
    """What MMPose's rule reads of a parameter: its full shape and ``requires_grad``."""

    def __init__(self, param: nn.Parameter, shape: tuple):
        self.param, self.shape, self.requires_grad = param, shape, param.requires_grad


class _Named:
    """A stand-in module whose ``named_parameters`` are the unwrapped ones."""

    def __init__(self, items):
        self.items = items

    def named_parameters(self):
        return iter(self.items)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ShardedLayerDecayOptimWrapperConstructor(LayerDecayOptimWrapperConstructor):
    """MMPose's layer-wise lr decay, on unwrapped names and unsharded shapes."""

    def __call__(self, model: nn.Module):
        self._root = model  # MMEngine's constructor unwraps ``model.module``
        return super().__call__(model)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', lr=None):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        root = getattr(self, '_root', module)
        if isinstance(root, FSDP):
            # collective: every rank builds its optimiser at the same point
            with FSDP.summon_full_params(root, writeback=False):
                shapes = {id(p): tuple(p.shape) for p in root.parameters()}
        else:
            shapes = {id(p): tuple(p.shape) for p in module.parameters()}
        items = [(unwrapped_name(n), _Param(p, shapes[id(p)]))
                 for n, p in module.named_parameters()]
        groups: List[dict] = []
        super().add_params(groups, _Named(items), prefix=prefix, lr=lr)
        for group in groups:
            group['params'] = [p.param for p in group['params']]
        params.extend(groups)
