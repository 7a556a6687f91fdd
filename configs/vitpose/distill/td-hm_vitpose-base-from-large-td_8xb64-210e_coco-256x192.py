# Knowledge-token distillation, stage 2: ViTPose-B student with the frozen token t* of a
# ViTPose-L teacher, 'td' = token distillation (paper Table 8: 76.0 AP vs 75.8 without).
# t* is 1024 wide; a fixed semi-orthogonal map (computed once from t*, saved with the
# model, no bias) hands it to the student's 768 channels without losing any of it.
# Checkpoints hold the student only: they load strictly into this config and into the
# plain student config plus backbone knowledge_token_dims=1024.
_base_ = ['../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

knowledge_token = 'checkpoints/token_large.pth'  # from tools/extract_knowledge_token.py

model = dict(
    type='KnowledgeTokenDistiller',
    mode='td',
    backbone=dict(
        knowledge_token_dims=1024,
        knowledge_token_file=knowledge_token,
        freeze_knowledge_token=True))
