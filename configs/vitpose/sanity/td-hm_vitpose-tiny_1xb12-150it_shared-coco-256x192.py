# Sanity check that training learns (not in the paper): a tiny ViTPose over-fits the 4
# shared COCO images (12 annotated people) in a few hundred iterations on a CPU and is
# then tested on the same images with flip test, UDP decoding and CocoMetric. A wrong
# codec, affine transform, flip or metric wiring keeps AP far below 0.9.
#   mim train mmpose configs/vitpose/sanity/td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py
# from any folder: the data is $VITPOSE_SHARED_DATA/coco, else shared/data/coco beside the
# repository (found from this file, not the working directory).
_base_ = ['../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py']
import os  # after _base_: MMEngine reads a config with imports first as a lazy-import one

data_root = os.path.join(os.environ.get('VITPOSE_SHARED_DATA') or os.path.realpath(
    '{{ fileDirname }}/../../../../shared/data'), 'coco/')
max_iters = 150

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=0.01),
    paramwise_cfg=dict(num_layers=4, layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=20, start_factor=0.01, by_epoch=False),
    dict(type='CosineAnnealingLR', begin=20, end=max_iters, eta_min=1e-5, by_epoch=False),
]
auto_scale_lr = dict(enable=False)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, by_epoch=False, save_best=None))
log_processor = dict(by_epoch=False, window_size=10)
randomness = dict(seed=0)

model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=128, num_layers=4, num_heads=4),
                  drop_path_rate=0.0,
                  init_cfg=None),
    head=dict(in_channels=128, deconv_out_channels=(64, 64)))

# no augmentation: the point is to fit these 12 people exactly
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=(192, 256), use_udp=True),
    dict(type='GenerateTarget', encoder={{_base_.codec}}),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    batch_size=12,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, ann_file='test_coco.json', data_prefix=dict(img=''),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=12,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='test_coco.json', data_prefix=dict(img=''),
                 bbox_file=None))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'test_coco.json')
test_evaluator = val_evaluator
