# ViTPose-B, classic decoder, COCO 256x192, fine-tuned with every block's MHSA (and its
# LayerNorm) frozen at the MAE weights (paper Table 6: 75.1 AP, 11,052 MB, vs 75.8 AP
# when everything trains).
_base_ = ['./td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(freeze_attn=True))
