# Knowledge-token distillation, stage 2: ViTPose-S student with the frozen token t* of a
# ViTPose-B teacher, 'td' = token distillation only (not in the paper, whose Table 8
# distils ViTPose-B from ViTPose-L: see td-hm_vitpose-base-from-large-td).
# Stage 1 (td-hm_vitpose-base-token-stage1) learned t* at the student's width, 384, so
# the student receives exactly the t* that was learned: nothing of it is lost. (A
# 768-wide token would lose part of itself in any fixed map and is refused.)
# Checkpoints hold the student only: they load strictly into this config and into the
# plain student config plus backbone knowledge_token_dims=384.
_base_ = ['../coco/td-hm_vitpose-small_8xb64-210e_coco-256x192.py']

knowledge_token = 'checkpoints/token_base.pth'  # from tools/extract_knowledge_token.py

model = dict(
    type='KnowledgeTokenDistiller',
    mode='td',
    backbone=dict(
        knowledge_token_dims=384,
        knowledge_token_file=knowledge_token,
        freeze_knowledge_token=True))
