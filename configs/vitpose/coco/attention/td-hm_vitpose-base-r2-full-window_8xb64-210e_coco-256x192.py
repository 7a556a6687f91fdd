# ViTPose-B, COCO 256x192, 1/8 features: 8x8 windows with full attention in the last
# block of every quarter of the depth (every third of 12 blocks), as ViTDet does (paper
# Table 5: 76.9 AP, 28,594 MB, 69.94 GFLOPs).
_base_ = ['./td-hm_vitpose-base-r2-window_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(full_attn_every=3))
