# Knowledge-token distillation, stage 2: ViTPose-S student of a ViTPose-B teacher,
# 'tod' = token + output distillation: the 'td' sibling plus the MSE between the
# student's and the frozen teacher's heatmaps over all keypoints (not in the paper).
# The teacher's weights load when training starts; it is never saved.
_base_ = ['./td-hm_vitpose-small-from-base-td_8xb64-210e_coco-256x192.py']

teacher_checkpoint = 'checkpoints/vitpose-b.pth'

model = dict(
    mode='tod',
    teacher='{{fileDirname}}/../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py',
    teacher_checkpoint=teacher_checkpoint)
