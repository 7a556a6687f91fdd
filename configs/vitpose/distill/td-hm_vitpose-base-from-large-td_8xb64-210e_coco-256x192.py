# Knowledge-token distillation, stage 2: ViTPose-B student with the frozen token t* of a
# ViTPose-L teacher, 'td' = token distillation (paper Table 8: 76.0 AP vs 75.8 without).
# Stage 1 (td-hm_vitpose-large-token-stage1) learned t* at the student's width, 768, so
# the student receives exactly the t* that was learned: nothing of it is lost. (A
# 1024-wide token would lose part of itself in any fixed map and is refused.)
# Checkpoints hold the student only: they load strictly into this config and into the
# plain student config plus backbone knowledge_token_dims=768.
_base_ = ['../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

knowledge_token = 'checkpoints/token_large.pth'  # from tools/extract_knowledge_token.py

model = dict(
    type='KnowledgeTokenDistiller',
    mode='td',
    backbone=dict(
        knowledge_token_dims=768,
        knowledge_token_file=knowledge_token,
        freeze_knowledge_token=True))
