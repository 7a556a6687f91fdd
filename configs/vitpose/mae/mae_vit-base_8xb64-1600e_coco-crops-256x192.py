# MAE pre-training of the ViTPose-B backbone on COCO person crops (ViTPose paper
# Table 3: 74.5 AP after fine-tuning, vs 75.8 with ImageNet-1k MAE). 75% of the
# 16x12 patches are hidden; an 8-block, 512-wide decoder reconstructs their
# normalised pixels. No labels are used: only the person boxes, enlarged by 1.25.
# Fine-tune afterwards with td-hm_vitpose-base-from-mae_8xb64-210e_coco-256x192.py.
_base_ = ['mmpose::_base_/default_runtime.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook')]

model = dict(
    type='ViTMAE',
    backbone=dict(type='ViT', arch='base', img_size=(256, 192)),
    decoder_dims=512,
    decoder_depth=8,
    decoder_heads=16,
    mask_ratio=0.75,
    norm_pix_loss=True,
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True))

# MAE's recipe: AdamW, lr 1.5e-4 x batch / 256, betas (0.9, 0.95), wd 0.05, 40 warm-up
# epochs, cosine decay
max_epochs = 1600
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1.5e-4 * 512 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'mask_token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 40, by_epoch=True, begin=40,
         end=max_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=512)
default_hooks = dict(checkpoint=dict(interval=50, max_keep_ckpts=3))

# person crops: box x 1.25, random scale / shift / rotation (a random resized crop), flip
crop_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='RandomBBoxTransform', scale_factor=(0.6, 1.2), rotate_factor=0,
         shift_factor=0.1),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='TopdownAffine', input_size=(192, 256)),
    dict(type='PackPoseInputs', meta_keys=('img_path', 'img_shape')),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CocoDataset',
        data_root='data/coco/',
        data_mode='topdown',
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=crop_pipeline))
