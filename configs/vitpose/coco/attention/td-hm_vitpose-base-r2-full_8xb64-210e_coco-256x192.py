# ViTPose-B, COCO 256x192, 1/8 features (ratio 2: overlapping stride-8 patches, 32x24
# tokens), full attention (paper Table 5: 77.4 AP, 36,141 MB training memory in fp16,
# 76.59 GFLOPs). The window variants of Table 5 inherit this config; none adds a
# parameter, so full-attention checkpoints load into all of them unchanged.
_base_ = ['../td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

model = dict(
    backbone=dict(ratio=2),
    # 1/8 features need one x2 deconv (not two) for 1/4-resolution heatmaps
    head=dict(deconv_out_channels=(256, ), deconv_kernel_sizes=(4, )))
