# Knowledge-token distillation, stage 1, for a trained ViTPose-H teacher (not in the
# paper): the ViTPose-B stage-1 recipe with a ViT-H backbone (1280 channels). The token
# is 1024 wide, for a ViTPose-L student (set knowledge_token_dims to your student's
# width); the teacher receives it through a fixed 1280x1024 matrix with orthonormal
# columns that does not depend on it. Then:
#   python tools/extract_knowledge_token.py work_dirs/<this config>/epoch_5.pth token_huge.pth
_base_ = ['./td-hm_vitpose-base-token-stage1_8xb64-5e_coco-256x192.py']

teacher_checkpoint = 'checkpoints/vitpose-h.pth'

model = dict(
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(arch='huge', knowledge_token_dims=1024),
    head=dict(in_channels=1280))
