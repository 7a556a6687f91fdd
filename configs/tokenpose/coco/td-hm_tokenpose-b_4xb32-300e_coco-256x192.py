# TokenPose-B (no COCO figure of it in the TokenPose paper; official config: 5.65
# GFLOPs): HRNet-W32 stages 1-3 (ImageNet weights), its 1/4 branch (32 channels) cut
# into 4x3 patches; 12 layers, 8 heads, 192-d.
_base_ = ['./td-hm_tokenpose-s-v1_4xb32-300e_coco-256x192.py']

model = dict(
    backbone=dict(
        num_stages=3,
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmpose/pretrain_models/'
            'hrnet_w32-36af842e.pth')),
    head=dict(in_channels=32, head_scale=True))
