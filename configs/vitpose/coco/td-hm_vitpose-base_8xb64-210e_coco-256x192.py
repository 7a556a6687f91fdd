# ViTPose-B, classic decoder, COCO 256x192 (paper Table 1/4: 75.8 AP with
# detected boxes, MAE ImageNet-1k pre-training). The other ViTPose configs
# inherit this recipe and change the backbone size / decoder / input size.
_base_ = ['mmpose::_base_/default_runtime.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)
# SyncBuffersHook as in MMPose's runtime; ResumableRandomnessHook makes --resume draw the
# same dropout / drop-path masks as a run that never stopped; CPUMixedPrecisionHook trains
# in bf16 autocast on CPUs with AMX (fp32 elsewhere, and on GPUs unless --amp;
# VITPOSE_CPU_TRAIN_DTYPE=float32 turns it off)
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ResumableRandomnessHook'),
                dict(type='CPUMixedPrecisionHook', dtype='auto')]

# runtime
train_cfg = dict(max_epochs=210, val_interval=10)

# optimizer: AdamW with layer-wise lr decay (MMPose's constructor); no weight
# decay on 1-D parameters (norms, biases) and the position embedding.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.75),
    constructor='LayerDecayOptimWrapperConstructor',
    clip_grad=dict(max_norm=1., norm_type=2),
)

# learning policy
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=210, milestones=[170, 200], gamma=0.1,
         by_epoch=True),
]

# lr 5e-4 is for 8 GPUs x 64 images
auto_scale_lr = dict(base_batch_size=512)

default_hooks = dict(
    checkpoint=dict(save_best='coco/AP', rule='greater', max_keep_ckpts=1))

# codec: UDP heatmaps at 1/4 of the input, sigma 2
codec = dict(type='UDPHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2)

# MAE ImageNet-1k weights (MMPose's copy). Train from scratch or load your own with
# --cfg-options model.backbone.init_cfg=None (or checkpoint=/path/to/mae.pth).
mae_checkpoint = ('https://download.openmmlab.com/mmpose/v1/pretrained_models/'
                  'mae_pretrain_vit_base_20230913.pth')

model = dict(
    type='StrictTopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ViT',
        arch='base',
        img_size=(256, 192),
        patch_size=16,
        qkv_bias=True,
        drop_path_rate=0.3,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=mae_checkpoint),
    ),
    # classic decoder: 2 x (deconv 4x4 s2 + BN + ReLU, 256 ch) + 1x1 conv
    head=dict(
        type='HeatmapHead',
        in_channels=768,
        out_channels=17,
        deconv_out_channels=(256, 256),
        deconv_kernel_sizes=(4, 4),
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False),
)

# data
data_root = 'data/coco/'
dataset_type = 'CocoDataset'
data_mode = 'topdown'

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline,
    ))
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_val2017.json',
        bbox_file=data_root + 'person_detection_results/'
        'COCO_val2017_detections_AP_H_56_person.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=val_pipeline,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric', ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator
