# ViTPose+-S (official ViTPose++ README: 75.8 COCO val AP): as ViTPose+-B, with a ViT-S
# backbone (expert width p = 96, a quarter of the 384 channels, as in the official
# ViTPose+ models).
_base_ = ['./td-hm_vitpose-plus-base_8xb64-210e_six-datasets-256x192.py']

mae_checkpoint = ('https://download.openmmlab.com/mmpose/v1/pretrained_models/'
                  'mae_pretrain_vit_small_20230913.pth')
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.8))
model = dict(
    backbone=dict(arch='small', part_features=96, drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=mae_checkpoint)),
    heads={name: dict(in_channels=384)
           for name in ('coco', 'aic', 'mpii', 'ap10k', 'apt36k', 'coco_wholebody')})
