# ViTPose-L, classic decoder, COCO 256x192 (paper Table 2: 78.3 AP), trained with
# MMEngine's FlexibleRunner + FSDPStrategy: every transformer block is its own fully
# sharded unit, parameters are gathered in bf16 (gradients reduced and weights kept in
# fp32), and every block is recomputed in backward (gradient checkpointing).
#   mim train mmpose configs/vitpose/fsdp/td-hm_vitpose-large-fsdp_8xb64-210e_coco-256x192.py --launcher pytorch --gpus 8
# Checkpoints are full state dicts: they load into the plain config.
_base_ = ['../coco/td-hm_vitpose-large_8xb64-210e_coco-256x192.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='PoseFSDPStrategy',  # MMEngine's FSDPStrategy, resume and clipping fixed
    state_dict_cfg='full',
    model_wrapper=dict(
        use_orig_params=True,  # layer-wise lr decay groups the parameters by name
        auto_wrap_policy=dict(type='vit_block_wrap_policy'),
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                             buffer_dtype='float32')))
model = dict(backbone=dict(with_cp=True))
# MMPose's layer decay on the unsharded names and shapes
optim_wrapper = dict(constructor='ShardedLayerDecayOptimWrapperConstructor')
