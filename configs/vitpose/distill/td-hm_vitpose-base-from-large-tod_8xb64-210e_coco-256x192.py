# Knowledge-token distillation, stage 2: ViTPose-B student of a ViTPose-L teacher,
# 'tod' = token + teacher heatmaps (paper Table 8: 76.6 AP).
# The student carries the teacher's frozen token t* (1024 wide); a learned Linear maps
# it to the student's 768 channels. Only the student is saved: its checkpoints
# load into the plain student config plus backbone knowledge_token_dims=1024.
_base_ = ['../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

teacher_checkpoint = 'checkpoints/vitpose-l.pth'
knowledge_token = 'checkpoints/token_large.pth'  # from tools/extract_knowledge_token.py

model = dict(
    type='KnowledgeTokenDistiller',
    mode='tod',
    teacher='{{fileDirname}}/../coco/td-hm_vitpose-large_8xb64-210e_coco-256x192.py',
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(
        knowledge_token_dims=1024,
        knowledge_token_file=knowledge_token,
        freeze_knowledge_token=True))
