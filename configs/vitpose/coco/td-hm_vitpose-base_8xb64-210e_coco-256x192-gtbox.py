# ViTPose-B, classic decoder, COCO 256x192, evaluated on ground-truth person boxes
# instead of detections (an upper bound of the detector's influence). No published
# figure with ground-truth boxes; with the parent's detected boxes the paper reports
# 75.8 AP.
_base_ = ['./td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

val_dataloader = dict(dataset=dict(bbox_file=None))
test_dataloader = val_dataloader
