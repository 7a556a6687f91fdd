# MAE pre-training on whole COCO images, no person crops (ViTPose paper Table 3's "not
# cropped" row, COCO + AIC: 75.8 AP; this config uses COCO alone): each image is resized
# as one box to 256x192 (padded to 3:4).
_base_ = ['./mae_vit-base_8xb64-1600e_coco-crops-256x192.py']

image_pipeline = [
    dict(type='LoadImage'),
    dict(type='WholeImageBBox'),
    dict(type='GetBBoxCenterScale', padding=1.0),
    dict(type='RandomBBoxTransform', scale_factor=(0.6, 1.0), rotate_factor=0,
         shift_factor=0.1),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='TopdownAffine', input_size=(192, 256)),
    dict(type='PackPoseInputs', meta_keys=('img_path', 'img_shape')),
]
train_dataloader = dict(dataset=dict(data_mode='bottomup', pipeline=image_pipeline))
