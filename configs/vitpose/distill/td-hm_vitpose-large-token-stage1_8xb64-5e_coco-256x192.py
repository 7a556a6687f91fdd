# Knowledge-token distillation, stage 1, for a trained ViTPose-L teacher (paper Table 8:
# its token lifts a ViTPose-B student from 75.8 to 76.0 AP): the ViTPose-B stage-1
# recipe with a ViT-L backbone (1024 channels). The token is 768 wide, the width of the
# ViTPose-B student that carries it unchanged; the teacher receives Q t through a fixed
# 1024x768 matrix with orthonormal columns that does not depend on t. Then:
#   python tools/extract_knowledge_token.py work_dirs/<this config>/epoch_5.pth token_large.pth
_base_ = ['./td-hm_vitpose-base-token-stage1_8xb64-5e_coco-256x192.py']

teacher_checkpoint = 'checkpoints/vitpose-l.pth'

model = dict(
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(arch='large', knowledge_token_dims=768),
    head=dict(in_channels=1024))
