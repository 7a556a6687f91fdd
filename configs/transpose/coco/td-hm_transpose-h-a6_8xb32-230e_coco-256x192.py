# TransPose-H-A6 (paper: 75.8 COCO val AP, 17.5M parameters, 21.8 GFLOPs): HRNet-W48
# stages 1-3 (ImageNet weights) read at their 1/4 branch (48 channels), a 1x1 conv to
# d=96, 2-D sine position encoding, a 6-layer encoder with one head (FFN 192) and a 1x1
# conv to the heatmaps. The last layer's attention maps are kept in
# model.neck.last_attention.
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w48_8xb32-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook')]

model = dict(
    type='StrictTopdownPoseEstimator',
    backbone=dict(type='TruncatedHRNet', num_stages=3),
    neck=dict(type='TransPoseEncoder', in_channels=48, embed_dims=96, num_layers=6,
              num_heads=1, ffn_dims=192, dropout=0.1),
    head=dict(in_channels=96, deconv_out_channels=None))

# TransPose's recipe: Adam, lr 1e-4 decaying to 1e-5 (cosine), 230 epochs, batch 32 x 8
train_cfg = dict(max_epochs=230)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=230, eta_min=1e-5, by_epoch=True, begin=0, end=230)]
auto_scale_lr = dict(base_batch_size=256)
train_dataloader = dict(batch_size=32)
