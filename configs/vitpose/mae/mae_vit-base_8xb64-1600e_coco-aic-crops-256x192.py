# MAE pre-training on COCO + AI Challenger person crops (ViTPose paper Table 3:
# 75.8 AP after fine-tuning, as good as ImageNet-1k MAE, from ~500K crops).
_base_ = ['./mae_vit-base_8xb64-1600e_coco-crops-256x192.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CombinedDataset',
        metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
        datasets=[
            dict(type='CocoDataset', data_root='data/coco/', data_mode='topdown',
                 ann_file='annotations/person_keypoints_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline={{_base_.crop_pipeline}}),
            dict(type='AicDataset', data_root='data/aic/', data_mode='topdown',
                 ann_file='annotations/aic_train.json',
                 data_prefix=dict(img='ai_challenger_keypoint_train_20170902/'
                                  'keypoint_train_images_20170902/'),
                 pipeline={{_base_.crop_pipeline}}),
        ],
        pipeline=[]))
