"""Keypoint names, skeleton, flip pairs and sigmas of a dataset, by its name.

Multi-dataset models use it to describe the head in use (``coco``, ``aic``, ``mpii``,
``ap10k``, ``apt36k``, ``coco_wholebody``, ... : MMPose's dataset metainfo files, and
the plugin's own for APT-36K).
"""
import os.path as osp
from functools import lru_cache

from mmpose.datasets.datasets.utils import parse_pose_metainfo

_PLUGIN = {'apt36k': osp.join(osp.dirname(__file__), 'apt36k_metainfo.py')}


@lru_cache()
def _metainfo(name: str) -> dict:
    path = _PLUGIN.get(name, f'configs/_base_/datasets/{name}.py')  # MMPose resolves it
    return parse_pose_metainfo(dict(from_file=path))


def dataset_metainfo(name: str) -> dict:
    """MMPose's parsed metainfo (``dataset_meta``) of dataset ``name`` (a copy)."""
    try:
        return dict(_metainfo(name))
    except (FileNotFoundError, AssertionError) as e:
        raise KeyError(f'no keypoint metainfo for a dataset named {name!r}') from e
