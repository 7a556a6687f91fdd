"""MMPose's own ViTPose (mmpretrain's VisionTransformer backbone), for comparisons.

Needs ``pip install --no-deps -r requirements/benchmarks.txt`` (mmpretrain).
"""
import os.path as osp

import mmpose
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MMPOSE_CFG = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', 'body_2d_keypoint',
                      'topdown_heatmap', 'coco',
                      'td-hm_ViTPose-{arch}{simple}_8xb64-210e_coco-256x192.py')
PLUGIN_CFG = osp.join(REPO, 'configs', 'vitpose', 'coco',
                      'td-hm_vitpose-{arch}{simple}_8xb64-210e_coco-256x192.py')


def mmpose_model(arch: str, simple: str = '') -> torch.nn.Module:
    """MMPose's ViTPose-``arch`` (``simple='-simple'`` for the simple decoder), random
    weights (seed 0) and random BatchNorm statistics, eval mode."""
    try:  # mmpretrain's multimodal models break on recent transformers; none is used
        import mmpretrain.utils.dependency as deps
        deps.WITH_MULTIMODAL = False
    except ImportError:
        pass
    cfg = Config.fromfile(MMPOSE_CFG.format(arch=arch, simple=simple))
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    for m in model.modules():  # so that the classic decoder's BN is exercised too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model
