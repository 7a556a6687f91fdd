# ViTPose-B trained on COCO + AI Challenger + MPII with one shared backbone and one
# classic decoder per dataset (paper Table 7: 75.8 -> 77.1 COCO AP). Validation runs
# every dataset with its own metric (COCO AP, AIC AP, MPII PCKh) in one pass.
_base_ = ['../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

codec = dict(type='UDPHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2)
datasets = dict(coco=17, aic=14, mpii=16)  # dataset -> keypoints, in expert/head order

head = dict(
    type='HeatmapHead',
    in_channels=768,
    deconv_out_channels=(256, 256),
    deconv_kernel_sizes=(4, 4),
    loss=dict(type='KeypointMSELoss', use_target_weight=True),
    decoder=codec)
model = dict(
    _delete_=True,
    type='MultiHeadTopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ViT',
        arch='base',
        img_size=(256, 192),
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint={{_base_.mae_checkpoint}})),
    heads={name: dict(head, out_channels=k) for name, k in datasets.items()},
    dataset_names=list(datasets),  # index order: experts, official checkpoint heads
    default_dataset='coco',
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False))
# a GPU's batch may hold no sample of some dataset: its head then gets no gradient
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

# every sample carries its dataset's name, which routes it to its head (and expert)
meta_keys = ('id', 'img_id', 'img_path', 'category_id', 'crowd_index', 'ori_shape',
             'img_shape', 'input_size', 'input_center', 'input_scale', 'flip',
             'flip_direction', 'flip_indices', 'raw_ann_info', 'dataset_name')
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs', meta_keys=meta_keys),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='PackPoseInputs', meta_keys=meta_keys),
]

train_coco = dict(
    type='CocoDataset', data_root='data/coco/', data_mode='topdown',
    ann_file='annotations/person_keypoints_train2017.json',
    data_prefix=dict(img='train2017/'), pipeline=train_pipeline)
train_aic = dict(
    type='AicDataset', data_root='data/aic/', data_mode='topdown',
    ann_file='annotations/aic_train.json',
    data_prefix=dict(img='ai_challenger_keypoint_train_20170902/keypoint_train_images_20170902/'),
    pipeline=train_pipeline)
train_mpii = dict(
    type='MpiiDataset', data_root='data/mpii/', data_mode='topdown',
    ann_file='annotations/mpii_train.json', data_prefix=dict(img='images/'),
    pipeline=train_pipeline)
val_coco = dict(
    type='CocoDataset', data_root='data/coco/', data_mode='topdown',
    ann_file='annotations/person_keypoints_val2017.json',
    bbox_file='data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json',
    data_prefix=dict(img='val2017/'), test_mode=True, pipeline=val_pipeline)
val_aic = dict(
    type='AicDataset', data_root='data/aic/', data_mode='topdown',
    ann_file='annotations/aic_val.json',
    data_prefix=dict(img='ai_challenger_keypoint_validation_20170911/keypoint_validation_images_20170911/'),
    test_mode=True, pipeline=val_pipeline)
val_mpii = dict(
    type='MpiiDataset', data_root='data/mpii/', data_mode='topdown',
    ann_file='annotations/mpii_val.json', headbox_file='data/mpii/annotations/mpii_gt_val.mat',
    data_prefix=dict(img='images/'), test_mode=True, pipeline=val_pipeline)

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CombinedDataset',
        metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
        datasets=[train_coco, train_aic, train_mpii],
        pipeline=[],  # each dataset packs its own samples
        test_mode=False))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CombinedDataset',
        metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
        datasets=[val_coco, val_aic, val_mpii],
        pipeline=[],
        test_mode=True))
# testing (mim test, and the pipeline inference_topdown / the demo compose) is COCO val
# with its own pipeline; validation during training covers every dataset. The combined
# set has no pipeline of its own: one would overwrite each sample's flip_indices.
test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=val_coco)
val_evaluator = dict(
    _delete_=True,
    type='MultiDatasetEvaluator',
    metrics=[
        dict(type='CocoMetric', ann_file='data/coco/annotations/person_keypoints_val2017.json'),
        dict(type='CocoMetric', ann_file='data/aic/annotations/aic_val.json', use_area=False,
             prefix='aic'),
        dict(type='MpiiPCKAccuracy', prefix='mpii'),
    ],
    datasets=[dict(type='CocoDataset'), dict(type='AicDataset'), dict(type='MpiiDataset')])
test_evaluator = dict(
    type='CocoMetric', ann_file='data/coco/annotations/person_keypoints_val2017.json')
