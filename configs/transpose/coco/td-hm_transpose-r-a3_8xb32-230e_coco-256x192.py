# TransPose-R-A3 (paper: 71.7 COCO val AP, 5.2M parameters, 8.0 GFLOPs): TransPose-R-A4
# with a 3-layer encoder.
_base_ = ['./td-hm_transpose-r-a4_8xb32-230e_coco-256x192.py']

model = dict(neck=dict(num_layers=3))
