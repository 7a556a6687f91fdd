# Swin-Pose: Swin-L + feature pyramid fusion, method A (element-wise sum), COCO 256x192
# (MMPose's plain Swin-L at 256x192: 74.3 AP). All four Swin stages feed
# PyramidFusionNeck; the fused 1/4-resolution map goes straight to a 1x1 heatmap conv
# (no deconvolution).
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_swin-l-p4-w7_8xb32-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook')]

# MMPose's own Swin-L config initialises from Swin-B weights (only 24 of 357 tensors
# fit); these are Swin-L's ImageNet-22k weights at window 7.
model = dict(
    type='StrictTopdownPoseEstimator',
    backbone=dict(
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth')),
    neck=dict(type='PyramidFusionNeck', in_channels=(192, 384, 768, 1536), fusion='sum'),
    head=dict(in_channels=192, deconv_out_channels=None))
