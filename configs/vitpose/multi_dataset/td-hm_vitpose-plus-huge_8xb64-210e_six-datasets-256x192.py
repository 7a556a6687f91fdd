# ViTPose+-H (official ViTPose++ README: 79.4 COCO val AP): as ViTPose+-B, with a ViT-H
# backbone (expert width p = 320, a quarter of the 1280 channels, as in the official
# ViTPose+ models).
_base_ = ['./td-hm_vitpose-plus-base_8xb64-210e_six-datasets-256x192.py']

mae_checkpoint = ('https://download.openmmlab.com/mmpose/v1/pretrained_models/'
                  'mae_pretrain_vit_huge_20230913.pth')
optim_wrapper = dict(paramwise_cfg=dict(num_layers=32, layer_decay_rate=0.85))
model = dict(
    backbone=dict(arch='huge', part_features=320, drop_path_rate=0.55,
                  init_cfg=dict(type='Pretrained', checkpoint=mae_checkpoint)),
    heads={name: dict(in_channels=1280)
           for name in ('coco', 'aic', 'mpii', 'ap10k', 'apt36k', 'coco_wholebody')})
