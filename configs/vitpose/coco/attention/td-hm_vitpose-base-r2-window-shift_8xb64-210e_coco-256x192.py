# ViTPose-B, COCO 256x192, 1/8 features (ratio 2, 32x24 tokens): 8x8 windows, shifted on every second block.
# Paper Table 5. No parameters beyond the full model: full-attention
# checkpoints load unchanged.
_base_ = ['../td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

model = dict(
    backbone=dict(
        ratio=2,
        attn_type='window+shift',
        window_size=(8, 8),
    ),
    # 1/8 features need one x2 deconv (not two) for 1/4-resolution heatmaps
    head=dict(deconv_out_channels=(256, ), deconv_kernel_sizes=(4, )),
)
