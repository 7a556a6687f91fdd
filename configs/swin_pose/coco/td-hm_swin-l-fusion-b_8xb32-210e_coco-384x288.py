# Swin-Pose: Swin-L + feature pyramid fusion, method B (channel concatenation, 2 x 192 =
# 384 channels), COCO 384x288 (MMPose's plain Swin-L at 384x288: 76.3 AP). All four Swin
# stages feed PyramidFusionNeck; the fused 1/4-resolution map goes straight to a 1x1
# heatmap conv (no deconvolution).
_base_ = ['./td-hm_swin-l-fusion-a_8xb32-210e_coco-384x288.py']

model = dict(neck=dict(fusion='concat'), head=dict(in_channels=384))
