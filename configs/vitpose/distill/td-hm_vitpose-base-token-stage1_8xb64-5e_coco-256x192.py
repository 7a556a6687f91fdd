# Knowledge-token distillation, stage 1 (paper section 3.5; not in the paper for a
# ViTPose-B teacher, whose Table 8 uses ViTPose-L's token): a trained ViTPose-B teacher
# gets one learnable token after its patch + position embedding; only the token trains,
# for a few epochs. The token is learned at the width of the ViTPose-S student it is for
# (384): the 768-wide teacher receives Q t, Q a fixed 768x384 matrix with orthonormal
# columns (seed 0, independent of t, saved as backbone.knowledge_token_map), and the
# student later receives t itself, so nothing the token learned is lost. For a student
# of another width, set knowledge_token_dims to that width. Then:
#   python tools/extract_knowledge_token.py work_dirs/<this config>/epoch_5.pth token_base.pth
_base_ = ['../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

# the trained teacher (any layout the plugin reads: official, MMPose, plugin)
teacher_checkpoint = 'checkpoints/vitpose-b.pth'

model = dict(
    type='KnowledgeTokenLearner',
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(knowledge_token_dims=384, drop_path_rate=0.0, init_cfg=None))

train_cfg = dict(max_epochs=5, val_interval=1)
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.0),
    clip_grad=dict(max_norm=1., norm_type=2))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False)]
