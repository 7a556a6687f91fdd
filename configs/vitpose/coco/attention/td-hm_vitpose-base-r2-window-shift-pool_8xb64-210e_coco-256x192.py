# ViTPose-B, COCO 256x192, 1/8 features: shifted 8x8 windows with pooled window summaries
# (paper Table 5: 76.8 AP, 22,893 MB, 66.39 GFLOPs).
_base_ = ['./td-hm_vitpose-base-r2-window-shift_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(attn_type='window+shift+pool'))
