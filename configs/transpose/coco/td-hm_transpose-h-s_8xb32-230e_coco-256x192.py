# TransPose-H-S (paper: 74.2 COCO val AP, 8.0M parameters, 10.2 GFLOPs): HRNet-W32 stages
# 1-3 read at their 1/4 branch (32 channels), d=64, 4 layers, one head, FFN 128.
_base_ = ['./td-hm_transpose-h-a6_8xb32-230e_coco-256x192.py']

model = dict(
    backbone=dict(
        extra=dict(
            stage2=dict(num_channels=(32, 64)),
            stage3=dict(num_channels=(32, 64, 128)),
            stage4=dict(num_channels=(32, 64, 128, 256))),
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmpose/pretrain_models/'
            'hrnet_w32-36af842e.pth')),
    neck=dict(in_channels=32, embed_dims=64, num_layers=4, ffn_dims=128),
    head=dict(in_channels=64))
