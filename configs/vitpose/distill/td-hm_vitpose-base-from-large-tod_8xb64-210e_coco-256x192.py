# Knowledge-token distillation, stage 2: ViTPose-B student of a ViTPose-L teacher,
# 'tod' = token + output distillation (paper Table 8: 76.6 AP; output alone 76.3): the
# 'td' sibling plus the MSE between the student's and the frozen teacher's heatmaps over
# all keypoints. The teacher's weights load when training starts; it is never saved.
_base_ = ['./td-hm_vitpose-base-from-large-td_8xb64-210e_coco-256x192.py']

teacher_checkpoint = 'checkpoints/vitpose-l.pth'

model = dict(
    mode='tod',
    teacher='{{fileDirname}}/../coco/td-hm_vitpose-large_8xb64-210e_coco-256x192.py',
    teacher_checkpoint=teacher_checkpoint)
