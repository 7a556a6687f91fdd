# ViTPose+-B: one ViT-B backbone whose FFNs have a shared part and one expert per
# dataset (p = 192 of 768 channels), and one classic decoder per dataset, trained on
# COCO, AI Challenger, MPII, AP-10K, APT-36K and COCO-WholeBody (official ViTPose++
# README: 77.0 COCO val AP, 31.8 AIC AP, 92.8 MPII PCKh, 74.5 AP-10K AP, 75.9 APT-36K AP,
# 57.4 WholeBody AP).
# Dataset paths follow MMPose's conventions; adjust data roots to your copies.
# Official ViTPose+ checkpoints load directly; tools/split_vitpose_plus.py turns one
# into six plain ViTPose checkpoints.
_base_ = ['./td-hm_vitpose-base_8xb64-210e_coco-aic-mpii-256x192.py']

datasets = dict(coco=17, aic=14, mpii=16, ap10k=17, apt36k=17, coco_wholebody=133)
head = dict(
    type='HeatmapHead',
    in_channels=768,
    deconv_out_channels=(256, 256),
    deconv_kernel_sizes=(4, 4),
    loss=dict(type='KeypointMSELoss', use_target_weight=True),
    decoder={{_base_.codec}})
model = dict(
    backbone=dict(num_experts=6, part_features=192),
    heads={name: dict(head, out_channels=k) for name, k in datasets.items()},
    dataset_names=list(datasets))

train_ap10k = dict(
    type='AP10KDataset', data_root='data/ap10k/', data_mode='topdown',
    ann_file='annotations/ap10k-train-split1.json', data_prefix=dict(img='data/'),
    pipeline={{_base_.train_pipeline}})
train_apt36k = dict(
    type='APT36KDataset', data_root='data/apt36k/', data_mode='topdown',
    ann_file='annotations/train_annotations_1.json', data_prefix=dict(img=''),
    pipeline={{_base_.train_pipeline}})
train_wholebody = dict(
    type='CocoWholeBodyDataset', data_root='data/coco/', data_mode='topdown',
    ann_file='annotations/coco_wholebody_train_v1.0.json', data_prefix=dict(img='train2017/'),
    pipeline={{_base_.train_pipeline}})
val_ap10k = dict(train_ap10k, ann_file='annotations/ap10k-val-split1.json', test_mode=True,
                 pipeline={{_base_.val_pipeline}})
val_apt36k = dict(train_apt36k, ann_file='annotations/val_annotations_1.json', test_mode=True,
                  pipeline={{_base_.val_pipeline}})
val_wholebody = dict(
    train_wholebody, ann_file='annotations/coco_wholebody_val_v1.0.json',
    data_prefix=dict(img='val2017/'), test_mode=True,
    bbox_file='data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json',
    pipeline={{_base_.val_pipeline}})

train_dataloader = dict(dataset=dict(datasets=[
    {{_base_.train_coco}}, {{_base_.train_aic}}, {{_base_.train_mpii}}, train_ap10k,
    train_apt36k, train_wholebody]))
val_dataloader = dict(dataset=dict(datasets=[
    {{_base_.val_coco}}, {{_base_.val_aic}}, {{_base_.val_mpii}}, val_ap10k, val_apt36k,
    val_wholebody]))
val_evaluator = dict(
    metrics=[
        dict(type='CocoMetric', ann_file='data/coco/annotations/person_keypoints_val2017.json'),
        dict(type='CocoMetric', ann_file='data/aic/annotations/aic_val.json', use_area=False,
             prefix='aic'),
        dict(type='MpiiPCKAccuracy', prefix='mpii'),
        dict(type='CocoMetric', ann_file='data/ap10k/annotations/ap10k-val-split1.json',
             prefix='ap10k'),
        dict(type='CocoMetric', ann_file='data/apt36k/annotations/val_annotations_1.json',
             prefix='apt36k'),
        dict(type='CocoWholeBodyMetric',
             ann_file='data/coco/annotations/coco_wholebody_val_v1.0.json', prefix='wholebody'),
    ],
    datasets=[dict(type='CocoDataset'), dict(type='AicDataset'), dict(type='MpiiDataset'),
              dict(type='AP10KDataset'), dict(type='APT36KDataset'),
              dict(type='CocoWholeBodyDataset')])
