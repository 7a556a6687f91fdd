# ViTPose-H, classic decoder, COCO 256x192 (paper Table 2: 79.1 AP), trained with FSDP as
# the ViTPose-L FSDP config (per-block units, bf16 parameters, gradient checkpointing).
_base_ = ['./td-hm_vitpose-large-fsdp_8xb64-210e_coco-256x192.py']

mae_checkpoint = ('https://download.openmmlab.com/mmpose/v1/pretrained_models/'
                  'mae_pretrain_vit_huge_20230913.pth')
optim_wrapper = dict(paramwise_cfg=dict(num_layers=32, layer_decay_rate=0.85))
model = dict(
    backbone=dict(
        arch='huge',
        drop_path_rate=0.55,
        init_cfg=dict(type='Pretrained', checkpoint=mae_checkpoint)),
    head=dict(in_channels=1280))
