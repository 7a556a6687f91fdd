# ViTPose-B, COCO 576x432, 1/16 features (36x27 tokens): 8x8 windows, shifted on every second block.
# Paper Table 5. No parameters beyond the full model: full-attention
# checkpoints load unchanged.
_base_ = ['../td-hm_vitpose-base_8xb64-210e_coco-576x432.py']

model = dict(
    backbone=dict(
        attn_type='window+shift',
        window_size=(8, 8),
    ),
)
