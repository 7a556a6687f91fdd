# Knowledge-token distillation, stage 2: ViTPose-S student with the frozen token t* of a
# ViTPose-B teacher, 'td' = token distillation only (not in the paper, whose Table 8
# distils ViTPose-B from ViTPose-L: see td-hm_vitpose-base-from-large-td).
# t* is 768 wide; a fixed semi-orthogonal map (computed once from t*, saved with the
# model, no bias) hands it to the student's 384 channels without losing any of it.
# Checkpoints hold the student only: they load strictly into this config and into the
# plain student config plus backbone knowledge_token_dims=768.
_base_ = ['../coco/td-hm_vitpose-small_8xb64-210e_coco-256x192.py']

knowledge_token = 'checkpoints/token_base.pth'  # from tools/extract_knowledge_token.py

model = dict(
    type='KnowledgeTokenDistiller',
    mode='td',
    backbone=dict(
        knowledge_token_dims=768,
        knowledge_token_file=knowledge_token,
        freeze_knowledge_token=True))
