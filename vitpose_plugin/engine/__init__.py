"""Training at scale with MMEngine's own runners: mixed precision on any device, FSDP
for the ViT (``configs/vitpose/fsdp``), layer-wise lr decay that survives sharding, and resuming
that draws the same random numbers as an uninterrupted run."""
from .fsdp import PoseFSDPStrategy, unwrapped_name, vit_block_wrap_policy
from .layer_decay import ShardedLayerDecayOptimWrapperConstructor
from .mixed_precision import CPUMixedPrecisionHook, MixedPrecisionOptimWrapper
from .resumable_randomness import ResumableRandomnessHook

__all__ = ['CPUMixedPrecisionHook', 'MixedPrecisionOptimWrapper', 'PoseFSDPStrategy',
           'ResumableRandomnessHook', 'ShardedLayerDecayOptimWrapperConstructor', 'unwrapped_name',
           'vit_block_wrap_policy']
