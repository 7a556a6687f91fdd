# ViTPose-B, COCO 256x192, 1/8 features: attention inside 8x8 windows only (paper
# Table 5: 66.4 AP, 21,161 MB, 66.31 GFLOPs).
_base_ = ['./td-hm_vitpose-base-r2-full_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(attn_type='window', window_size=(8, 8)))
