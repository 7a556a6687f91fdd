# ViTPose-B, COCO 576x432, 1/16 features (36x27 tokens): full attention (paper: 77.4 AP, 36,141 MB at 256x192).
# Paper Table 5. No parameters beyond the full model: full-attention
# checkpoints load unchanged.
_base_ = ['../td-hm_vitpose-base_8xb64-210e_coco-576x432.py']

model = dict(
    backbone=dict(
        attn_type='full',
    ),
)
