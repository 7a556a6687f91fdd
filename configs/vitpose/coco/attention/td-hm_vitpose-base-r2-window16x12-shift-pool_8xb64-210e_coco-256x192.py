# ViTPose-B, COCO 256x192, 1/8 features: shifted 16x12 windows with pooled window
# summaries (paper Table 5: 77.1 AP, 26,778 MB, 68.46 GFLOPs).
_base_ = ['./td-hm_vitpose-base-r2-window-shift-pool_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(window_size=(16, 12)))
