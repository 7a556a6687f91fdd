# ViTPose-B, COCO 256x192, 1/8 features: 8x8 windows, shifted by half a window on every
# second block (paper Table 5: 76.4 AP, 21,161 MB, 66.31 GFLOPs).
_base_ = ['./td-hm_vitpose-base-r2-window_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(attn_type='window+shift'))
