# Swin-Pose: Swin-T + feature pyramid fusion, method B (channel concatenation), COCO 384x288.
# All four Swin stages feed PyramidFusionNeck; the fused 1/4-resolution map
# goes straight to a 1x1 heatmap conv (no deconvolution).
_base_ = ['./td-hm_swin-t-fusion-b_8xb32-210e_coco-256x192.py']

custom_imports = dict(imports=['vitpose_plugin'], allow_failed_imports=False)

codec = dict(type='MSRAHeatmap', input_size=(288, 384), heatmap_size=(72, 96), sigma=3)
model = dict(
    type='StrictTopdownPoseEstimator',
    backbone=dict(out_indices=(0, 1, 2, 3)),
    neck=dict(type='PyramidFusionNeck', in_channels=(96, 192, 384, 768), fusion='concat'),
    head=dict(in_channels=192, deconv_out_channels=None, decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
