# ViTPose-S trained from scratch on coco-mini-train (80 COCO train2017 images, 86
# annotated people) for 40 epochs (240 iterations) on a CPU, then tested on the 4 shared COCO val
# images. Not in the paper: it is a trained model to measure int8 against fp32 on
# (activation outliers appear only in trained ViTs), made by
#   mim train mmpose configs/vitpose/coco_mini/td-hm_vitpose-small_1xb16-40e_coco-mini-256x192.py
# (20 minutes on 2 CPU cores, AMD EPYC) from any folder: the data is $VITPOSE_SHARED_DATA,
# else shared/data beside the repository (found from this file). From
# scratch, this short run does not yet localise keypoints (COCO AP 0.0 on the 4 images);
# see docs/performance.md for what int8 measurements on it can and cannot show.
_base_ = ['../coco/td-hm_vitpose-small_8xb64-210e_coco-256x192.py']
import os  # after _base_: MMEngine reads a config with imports first as a lazy-import one

data_root = os.path.join(os.environ.get('VITPOSE_SHARED_DATA') or os.path.realpath(
    '{{ fileDirname }}/../../../../shared/data'), '')
max_epochs = 40
train_cfg = dict(max_epochs=max_epochs, val_interval=20)
optim_wrapper = dict(optimizer=dict(lr=5e-4), paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01, by_epoch=False),
    dict(type='CosineAnnealingLR', begin=0, end=max_epochs, eta_min=1e-6, by_epoch=True),
]
auto_scale_lr = dict(enable=False)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=20, save_best=None, max_keep_ckpts=1))
randomness = dict(seed=0)

model = dict(backbone=dict(init_cfg=None, drop_path_rate=0.1))
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(data_root=data_root + 'coco-mini-train/',
                 ann_file='person_keypoints_train2017.json',
                 data_prefix=dict(img='train2017/')))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root + 'coco/', ann_file='test_coco.json',
                 data_prefix=dict(img=''), bbox_file=None))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'coco/test_coco.json')
test_evaluator = val_evaluator
