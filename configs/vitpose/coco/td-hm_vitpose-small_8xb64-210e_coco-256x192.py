# ViTPose-S, classic decoder, COCO 256x192 (not in the paper's tables; the official
# repository reports 73.8 AP).
_base_ = ['./td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

mae_checkpoint = ('https://download.openmmlab.com/mmpose/v1/pretrained_models/'
                  'mae_pretrain_vit_small_20230913.pth')

optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.8))

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=mae_checkpoint)),
    head=dict(in_channels=384))
