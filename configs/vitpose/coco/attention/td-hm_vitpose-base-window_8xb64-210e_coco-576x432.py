# ViTPose-B, COCO 576x432, 1/16 features (36x27 tokens, about as many as 1/8 features at
# 256x192): attention inside 8x8 windows only. Not in the paper, which measured the
# attention types at 256x192 with 1/8 features (the -r2 configs); the full-attention
# baseline is ../td-hm_vitpose-base_8xb64-210e_coco-576x432.py (paper Table 4: 77.8 AP).
_base_ = ['../td-hm_vitpose-base_8xb64-210e_coco-576x432.py']

model = dict(backbone=dict(attn_type='window', window_size=(8, 8)))
