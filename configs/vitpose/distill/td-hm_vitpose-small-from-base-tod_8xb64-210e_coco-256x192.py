# Knowledge-token distillation, stage 2: ViTPose-S student of a ViTPose-B teacher,
# 'tod' = token + teacher heatmaps.
# The student carries the teacher's frozen token t* (768 wide); a learned Linear maps
# it to the student's 384 channels. Only the student is saved: its checkpoints
# load into the plain student config plus backbone knowledge_token_dims=768.
_base_ = ['../coco/td-hm_vitpose-small_8xb64-210e_coco-256x192.py']

teacher_checkpoint = 'checkpoints/vitpose-b.pth'
knowledge_token = 'checkpoints/token_base.pth'  # from tools/extract_knowledge_token.py

model = dict(
    type='KnowledgeTokenDistiller',
    mode='tod',
    teacher='{{fileDirname}}/../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py',
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(
        knowledge_token_dims=768,
        knowledge_token_file=knowledge_token,
        freeze_knowledge_token=True))
