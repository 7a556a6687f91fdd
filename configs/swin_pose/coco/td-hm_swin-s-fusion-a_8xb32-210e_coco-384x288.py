# Swin-Pose: Swin-S + feature pyramid fusion, method A (element-wise sum), COCO 384x288
# (no published figure for a plain Swin-S at 384x288). All four Swin stages feed
# PyramidFusionNeck; the fused 1/4-resolution map goes straight to a 1x1 heatmap conv
# (no deconvolution).
_base_ = ['./td-hm_swin-t-fusion-a_8xb32-210e_coco-384x288.py']

model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        num_heads=[3, 6, 12, 24],
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth')))
