# Swin-Pose: Swin-B + feature pyramid fusion, method A (element-wise sum), COCO 256x192
# (MMPose's plain Swin-B at 256x192: 73.7 AP). All four Swin stages feed
# PyramidFusionNeck; the fused 1/4-resolution map goes straight to a 1x1 heatmap conv
# (no deconvolution).
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_swin-b-p4-w7_8xb32-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook')]

model = dict(
    type='StrictTopdownPoseEstimator',
    backbone=dict(out_indices=(0, 1, 2, 3)),
    neck=dict(type='PyramidFusionNeck', in_channels=(128, 256, 512, 1024), fusion='sum'),
    head=dict(in_channels=128, deconv_out_channels=None))
