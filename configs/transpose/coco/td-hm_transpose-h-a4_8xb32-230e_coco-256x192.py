# TransPose-H-A4 (paper: 75.3 COCO val AP, 17.3M parameters, 17.5 GFLOPs): TransPose-H-A6
# with 4 encoder layers.
_base_ = ['./td-hm_transpose-h-a6_8xb32-230e_coco-256x192.py']

model = dict(neck=dict(num_layers=4))
