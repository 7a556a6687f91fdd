# TokenPose-L/D24 (paper: 75.8 COCO val AP, 27.5M parameters, 11.0 GFLOPs): HRNet-W48
# stages 1-3 (ImageNet weights), its 1/4 branch (48 channels) cut into 4x3 patches;
# 24 layers in 3 stages of 8, 12 heads, 192-d; the keypoint tokens of the three stages
# are concatenated (576-d) and mapped by LN -> Linear to the heatmaps.
_base_ = ['./td-hm_tokenpose-s-v1_4xb32-300e_coco-256x192.py']

model = dict(
    backbone=dict(
        num_stages=3,
        extra=dict(
            stage2=dict(num_channels=(48, 96)),
            stage3=dict(num_channels=(48, 96, 192)),
            stage4=dict(num_channels=(48, 96, 192, 384))),
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmpose/pretrain_models/'
            'hrnet_w48-8ef0771d.pth')),
    head=dict(in_channels=48, depth=24, num_stages=3, num_heads=12, hidden_dims=None,
              head_scale=True))

auto_scale_lr = dict(base_batch_size=64)
train_dataloader = dict(batch_size=16)
