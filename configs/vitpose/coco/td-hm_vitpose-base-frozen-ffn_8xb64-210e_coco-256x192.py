# ViTPose-B, classic decoder, COCO 256x192, fine-tuned with every block's FFN (and its
# LayerNorm) frozen at the MAE weights, and, as the authors' code does, the patch and
# position embeddings too (paper Table 6: 72.8 AP, 10,941 MB, vs 75.8 AP).
_base_ = ['./td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(freeze_ffn=True))
