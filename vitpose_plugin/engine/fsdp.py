"""FSDP for the ViT with MMEngine's ``FlexibleRunner``: the wrapping policy, the
parameter names under the wrappers, and MMEngine's ``FSDPStrategy`` fixed for torch 2.

``vit_block_wrap_policy`` makes each transformer block one fully sharded unit; the rest,
the heads included, is the root unit, so a head that a rank's batch does not use never
leaves the ranks' collectives out of step. Registered in MMEngine's FUNCTIONS::

    strategy = dict(type='PoseFSDPStrategy',
                    model_wrapper=dict(auto_wrap_policy=dict(type='vit_block_wrap_policy')))
"""
from functools import partial

import torch
import torch.nn as nn
from mmengine._strategy import FSDPStrategy
from mmengine.registry import FUNCTIONS, STRATEGIES

WRAPPER_NAMES = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module')


def unwrapped_name(name: str) -> str:
    """A parameter / module name without FSDP's and activation checkpointing's parts:
    ``_fsdp_wrapped_module.backbone.layers.0._fsdp_wrapped_module.attn`` ->
    ``backbone.layers.0.attn``."""
    return '.'.join(p for p in name.split('.') if p not in WRAPPER_NAMES)


@FUNCTIONS.register_module()
def vit_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """torch FSDP auto-wrap policy: wrap every ViT ``Block``, recurse into the rest."""
    from ..models.backbones.vit import Block
    return True if recurse else isinstance(module, Block)


def _clip_global_norm(model, params, max_norm, norm_type=2.0, **kwargs):
    """``clip_grad_norm_`` for ``OptimWrapper.clip_func``, over all ranks' shards."""
    return model.clip_grad_norm_(max_norm, norm_type)


@STRATEGIES.register_module()
class PoseFSDPStrategy(FSDPStrategy):
    """MMEngine's ``FSDPStrategy`` with two fixes for torch 2, otherwise the same.

    * ``--resume`` loads the optimiser state: MMEngine 0.10 calls
      ``FSDP.optim_state_dict_to_load(state, model, optim)``, torch 1's argument order;
      torch 2 takes ``(model, optim, state)`` and fails with "unhashable type: 'dict'".
    * ``clip_grad=dict(max_norm=...)`` clips by the norm of the whole gradient: MMEngine
      applies ``torch.nn.utils.clip_grad_norm_`` to each rank's shard, so every rank
      clips by the norm of its own shard. ``FullyShardedDataParallel.clip_grad_norm_``
      reduces the norm over the ranks first.
    """

    def build_optim_wrapper(self, optim_wrapper, model=None):
        wrapper = super().build_optim_wrapper(optim_wrapper, model)
        model = model if model is not None else self.model
        for w in getattr(wrapper, 'optim_wrappers', {'': wrapper}).values():
            if getattr(w, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
                w.clip_func = partial(_clip_global_norm, model)
        return wrapper

    def load_optim_state_dict(self, state_dict: dict) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        optimizer = self.optim_wrapper.optimizer
        self.optim_wrapper.load_state_dict(
            FSDP.optim_state_dict_to_load(self.model, optimizer, state_dict))
