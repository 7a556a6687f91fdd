# ViTPose-B, COCO 576x432, 1/16 features: 8x8 windows with pooled window summaries. Not in
# the paper (its Table 5 is at 256x192 with 1/8 features: the -r2 configs).
_base_ = ['./td-hm_vitpose-base-window_8xb64-210e_coco-576x432.py']

model = dict(backbone=dict(attn_type='window+pool'))
