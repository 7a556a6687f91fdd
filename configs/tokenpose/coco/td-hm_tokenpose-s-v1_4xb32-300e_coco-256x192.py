# TokenPose-S-v1 (paper: 72.5 COCO val AP, 6.6M parameters, 2.2 GFLOPs): HRNet's stem and
# stage 1 (two stride-2 3x3 convs + 4 bottlenecks -> 256 channels at 1/4), 4x3 patches of
# that map -> 192-d visual tokens, 17 keypoint tokens, 12 pre-norm layers (8 heads), and
# an MLP from each keypoint token to its 64x48 heatmap. Trained from scratch.
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook')]

model = dict(
    type='StrictTopdownPoseEstimator',
    # trained from scratch, initialised as the authors do: convolutions N(0, 0.001),
    # BatchNorm weight 1 and bias 0 (not the ImageNet HRNet of the base config)
    backbone=dict(
        type='TruncatedHRNet',
        num_stages=1,
        init_cfg=[dict(type='Normal', std=0.001, layer=['Conv2d']),
                  dict(type='Constant', val=1, bias=0, layer=['_BatchNorm'])]),
    head=dict(
        _delete_=True,
        type='TokenPoseHead',
        in_channels=256,
        out_channels=17,
        heatmap_size={{_base_.codec.heatmap_size}},
        patch_size=(4, 3),
        embed_dims=192,
        depth=12,
        num_heads=8,
        ffn_ratio=3,
        hidden_dims=384,  # (64 x 48) / 8, as in the authors' code
        head_scale=False,  # TokenPose-S scales logits by embed_dims**-0.5
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder={{_base_.codec}}))

# TokenPose's recipe: Adam, lr 1e-3, x0.1 at epochs 200 and 260 of 300; 4 GPUs x 32
train_cfg = dict(max_epochs=300)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=300, milestones=[200, 260], gamma=0.1, by_epoch=True)]
auto_scale_lr = dict(base_batch_size=128)
train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=32)
