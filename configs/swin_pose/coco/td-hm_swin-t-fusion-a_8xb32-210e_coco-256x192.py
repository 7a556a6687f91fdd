# Swin-Pose: Swin-T + feature pyramid fusion, method A (element-wise sum), COCO 256x192
# (MMPose's plain Swin-T at 256x192: 72.4 AP). All four Swin stages feed
# PyramidFusionNeck; the fused 1/4-resolution map goes straight to a 1x1 heatmap conv
# (no deconvolution).
# Recipe: MMPose's Swin recipe (AdamW lr 5e-4, weight decay 0.01, 210 epochs, batch
# 32 x 8, MSRA heatmaps with sigma 2 at both input sizes, drop path 0.2 / 0.3 / 0.3 /
# 0.5 for T / S / B / L). The headers quote MMPose's plain Swin (no fusion, deconv
# head) as the reference point; the Swin-Pose paper's tables are not quoted.
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_swin-t-p4-w7_8xb32-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook')]

model = dict(
    type='StrictTopdownPoseEstimator',
    backbone=dict(out_indices=(0, 1, 2, 3)),
    neck=dict(type='PyramidFusionNeck', in_channels=(96, 192, 384, 768), fusion='sum'),
    head=dict(in_channels=96, deconv_out_channels=None))
