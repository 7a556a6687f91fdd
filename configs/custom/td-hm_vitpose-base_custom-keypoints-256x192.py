# Fine-tune a ViTPose checkpoint on your own keypoint set (not in the paper; no published
# figure). Copy this file and set the lines up to the marker: the architecture and
# checkpoint you start from, your metainfo (tools/make_metainfo.py writes it from your
# COCO-format annotations) and your data. The head's keypoint count, the three dataloaders,
# flipping, the visualizer and CocoMetric (with your sigmas) follow from them. The backbone
# and the decoder load from the checkpoint; only the final layer, whose shape depends on the
# keypoint count, is re-initialised (reinit_mismatched below; the log names what it kept).
#   python tools/make_metainfo.py data/train.json my_metainfo.py
#   mim train mmpose my_config.py
# The whole recipe: docs/custom_keypoints.md.
_base_ = [
    # the architecture of the checkpoint in load_from (relative to this file, or absolute)
    '../vitpose/coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py',
    # your keypoints: a metainfo file (relative to this file, or absolute); MMPose's COCO
    # metainfo here, for a fine-tune on your own COCO-style images
    'mmpose::_base_/datasets/coco.py',
]
import os.path as osp  # after _base_: MMEngine reads a config with imports first as a lazy-import one

# any checkpoint of that architecture: official ViTPose, MMPose's, Hugging Face's or this
# plugin's (its keypoint set may differ from yours)
load_from = ('https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/'
             'td-hm_ViTPose-base_8xb64-210e_coco-256x192-216eae50_20230314.pth')
# the data: a folder relative to this file (or absolute), annotation files and the image
# folder relative to it
data_root = 'data/'
train_ann = 'train.json'
val_ann = 'val.json'
test_ann = val_ann
img_prefix = 'images/'
# ------------------------------------------------------------------ the rest follows

data_root = osp.join('{{ fileDirname }}', data_root)
num_keypoints = len(_base_.dataset_info.keypoint_info)

model = dict(
    reinit_mismatched=['head.final_layer'],
    backbone=dict(init_cfg=None),  # load_from replaces the MAE initialisation
    head=dict(out_channels=num_keypoints))


def _dataset(ann_file):
    return dict(data_root=data_root, ann_file=ann_file, data_prefix=dict(img=img_prefix),
                metainfo=_base_.dataset_info)


train_dataloader = dict(dataset=_dataset(train_ann))
# people are cropped at their annotated boxes; for detected boxes set bbox_file
val_dataloader = dict(dataset=dict(_dataset(val_ann), bbox_file=None))
test_dataloader = dict(dataset=dict(_dataset(test_ann), bbox_file=None))
val_evaluator = dict(type='CocoMetric', ann_file=osp.join(data_root, val_ann))
test_evaluator = dict(type='CocoMetric', ann_file=osp.join(data_root, test_ann))
