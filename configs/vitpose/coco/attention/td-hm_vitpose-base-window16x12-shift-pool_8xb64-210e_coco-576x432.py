# ViTPose-B, COCO 576x432, 1/16 features: shifted 16x12 windows with pooled window
# summaries. Not in the paper (its Table 5 is at 256x192 with 1/8 features: the -r2
# configs).
_base_ = ['./td-hm_vitpose-base-window-shift-pool_8xb64-210e_coco-576x432.py']

model = dict(backbone=dict(window_size=(16, 12)))
