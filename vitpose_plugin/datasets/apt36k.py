"""APT-36K: COCO-format animal poses with AP-10K's keypoints (ViTPose+'s 5th dataset)."""
import os.path as osp

from mmpose.datasets.datasets.animal import AP10KDataset
from mmpose.registry import DATASETS


@DATASETS.register_module()
class APT36KDataset(AP10KDataset):
    """AP-10K's format and metric under its own ``dataset_name`` ('apt36k'), so that
    multi-dataset models route its samples to their own head and expert."""

    METAINFO: dict = dict(from_file=osp.join(osp.dirname(__file__), 'apt36k_metainfo.py'))
