# Swin-Pose: Swin-T + feature pyramid fusion, method B (channel concatenation, 2 x 96 =
# 192 channels), COCO 384x288 (no published figure for a plain Swin-T at 384x288). All
# four Swin stages feed PyramidFusionNeck; the fused 1/4-resolution map goes straight to
# a 1x1 heatmap conv (no deconvolution).
_base_ = ['./td-hm_swin-t-fusion-a_8xb32-210e_coco-384x288.py']

model = dict(neck=dict(fusion='concat'), head=dict(in_channels=192))
