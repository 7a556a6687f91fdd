# Swin-Pose: Swin-S + feature pyramid fusion, method A (element-wise sum), COCO 384x288:
# Swin-T's 384x288 config with Swin-S's depths and ImageNet weights.
_base_ = ['./td-hm_swin-t-fusion-a_8xb32-210e_coco-384x288.py']

model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        num_heads=[3, 6, 12, 24],
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/'
            'v1.0.0/swin_small_patch4_window7_224.pth')))
