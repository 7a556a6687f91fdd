"""Fixtures shared by the test modules (helper functions live in helpers.py)."""
import os

import pytest
import torch
from mmengine.config import Config

from helpers import CONFIGS, SHARED_DATA, mim_train, tiny_config

# The ViTPose configs train in bf16 on CPUs with AMX (CPUMixedPrecisionHook): the suite
# trains in fp32 on every CPU, so that results do not depend on the machine; the hook's
# choice is tested in test_mixed_precision.py
os.environ.setdefault('VITPOSE_CPU_TRAIN_DTYPE', 'float32')

SANITY = CONFIGS / 'vitpose' / 'sanity' / 'td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py'


def _shared(path, what):
    if not path.exists():
        pytest.skip(f'shared {what} not found at {path} (set VITPOSE_SHARED_DATA to the '
                    'shared/data folder)')
    return path.parent if path.is_file() else path


@pytest.fixture
def coco_dir():
    return _shared(SHARED_DATA / 'coco' / 'test_coco.json', 'COCO test data')


@pytest.fixture(scope='session')
def trained_sanity(tmp_path_factory):
    """The sanity config trained once through ``mim train`` (150 iterations on the shared
    COCO people), for the tests that need a trained model: (work dir, its last COCO AP).
    The work dir holds ``iter_150.pth`` and the dumped config; tests only read it."""
    coco = _shared(SHARED_DATA / 'coco' / 'test_coco.json', 'COCO test data')
    work = tmp_path_factory.mktemp('sanity') / 'work'
    return work, mim_train(SANITY, work, coco)


@pytest.fixture(scope='session')
def images():
    return _shared(SHARED_DATA / 'images' / 'sunglasses.jpg', 'demo images')


@pytest.fixture(scope='session')
def tiny_models(tmp_path_factory):
    """A tiny RTMDet whose 'person' logit is forced high (so it finds boxes) and a
    tiny ViTPose, both saved as config + checkpoint files; demo arguments."""
    import os.path as osp

    import mmdet
    from mmdet.apis import init_detector
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    tmp = tmp_path_factory.mktemp('models')
    det_cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs',
                                       'rtmdet', 'rtmdet_tiny_8xb32-300e_coco.py'))
    det_cfg.model.backbone.init_cfg = None
    det_cfg.model.test_cfg.max_per_img = 3
    torch.manual_seed(0)
    det = init_detector(det_cfg, None, device='cpu')
    with torch.no_grad():
        for conv in det.bbox_head.rtm_cls:
            conv.bias[0] = 6.0
        for conv in det.bbox_head.rtm_reg:  # boxes reaching 4 strides from each anchor
            conv.weight.zero_()
            conv.bias.fill_(4.0)
    det_cfg.dump(str(tmp / 'det.py'))
    torch.save({'state_dict': det.state_dict(), 'meta': {'dataset_meta': det.dataset_meta}},
               tmp / 'det.pth')

    pose_cfg = tiny_config('td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
    init_default_scope('mmpose')
    pose = MODELS.build(pose_cfg.model)
    pose_cfg.dump(str(tmp / 'pose.py'))
    torch.save({'state_dict': pose.state_dict()}, tmp / 'pose.pth')
    return ['--det-config', str(tmp / 'det.py'), '--det-checkpoint', str(tmp / 'det.pth'),
            '--pose-config', str(tmp / 'pose.py'), '--pose-checkpoint', str(tmp / 'pose.pth')]
