# Swin-Pose: Swin-S + feature pyramid fusion, method A (element-wise sum), COCO 256x192.
# All four Swin stages feed PyramidFusionNeck; the fused 1/4-resolution map
# goes straight to a 1x1 heatmap conv (no deconvolution).
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_swin-t-p4-w7_8xb32-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)

model = dict(
    type='StrictTopdownPoseEstimator',
    backbone=dict(
        out_indices=(0, 1, 2, 3),
        depths=[2, 2, 18, 2],
        num_heads=[3, 6, 12, 24],
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/'
            'v1.0.0/swin_small_patch4_window7_224.pth')),
    neck=dict(type='PyramidFusionNeck', in_channels=(96, 192, 384, 768), fusion='sum'),
    head=dict(in_channels=96, deconv_out_channels=None))
