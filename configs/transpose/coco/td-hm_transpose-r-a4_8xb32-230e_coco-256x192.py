# TransPose-R-A4 (paper: 72.6 COCO val AP, 6.0M parameters, 8.9 GFLOPs): ResNet-50 up to
# layer2 (1/8, 512 channels), a 1x1 conv to d=256, 2-D sine position encoding, a 4-layer
# transformer encoder (8 heads, FFN 1024), one 4x4 stride-2 deconvolution to 1/4 and a
# 1x1 conv to the heatmaps. The last layer's attention maps are kept in
# model.neck.last_attention.
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook')]

model = dict(
    type='StrictTopdownPoseEstimator',
    backbone=dict(depth=50, num_stages=2, out_indices=(1, ), strides=(1, 2), dilations=(1, 1)),
    neck=dict(type='TransPoseEncoder', in_channels=512, embed_dims=256, num_layers=4,
              num_heads=8, ffn_dims=1024, dropout=0.1),
    head=dict(in_channels=256, deconv_out_channels=(256, ), deconv_kernel_sizes=(4, )))

# TransPose's recipe: Adam, lr 1e-4 decaying to 1e-5 (cosine), 230 epochs, batch 32 x 8
train_cfg = dict(max_epochs=230)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=230, eta_min=1e-5, by_epoch=True, begin=0, end=230)]
auto_scale_lr = dict(base_batch_size=256)
train_dataloader = dict(batch_size=32)
