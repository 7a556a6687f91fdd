# Swin-Pose: Swin-B + feature pyramid fusion, method B (channel concatenation: keeps
# every stage's information; 2 x 128 = 256 fused channels), COCO 256x192. Method A otherwise.
_base_ = ['./td-hm_swin-b-fusion-a_8xb32-210e_coco-256x192.py']

model = dict(neck=dict(fusion='concat'), head=dict(in_channels=256))
