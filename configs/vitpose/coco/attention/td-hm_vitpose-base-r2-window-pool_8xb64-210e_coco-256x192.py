# ViTPose-B, COCO 256x192, 1/8 features: 8x8 windows whose keys and values also hold the
# average-pooled summary of every window (paper Table 5: 76.4 AP, 22,893 MB, 66.39 GFLOPs).
_base_ = ['./td-hm_vitpose-base-r2-window_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(attn_type='window+pool'))
