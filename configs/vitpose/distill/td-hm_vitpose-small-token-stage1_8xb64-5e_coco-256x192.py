# Knowledge-token distillation, stage 1, for a trained ViTPose-S teacher (not in the
# paper): the ViTPose-B stage-1 recipe with a ViT-S backbone (384 channels). There is no
# narrower ViTPose, so the token is 384 wide, for a student as wide as the teacher (set
# knowledge_token_dims to a narrower student's width). Then:
#   python tools/extract_knowledge_token.py work_dirs/<this config>/epoch_5.pth token_small.pth
_base_ = ['./td-hm_vitpose-base-token-stage1_8xb64-5e_coco-256x192.py']

teacher_checkpoint = 'checkpoints/vitpose-s.pth'

model = dict(
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(arch='small', knowledge_token_dims=384),
    head=dict(in_channels=384))
