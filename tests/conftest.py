import os
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'
SHARED_DATA = Path(os.environ.get('VITPOSE_SHARED_DATA', REPO.parent / 'shared' / 'data'))

TINY_ARCH = dict(embed_dims=64, num_layers=2, num_heads=4)


@pytest.fixture
def coco_dir():
    path = SHARED_DATA / 'coco'
    if not (path / 'test_coco.json').is_file():
        pytest.skip(f'shared COCO test data not found at {path} '
                    '(set VITPOSE_SHARED_DATA to the shared/data folder)')
    return path


def vitpose_configs():
    return sorted(p.name for p in (CONFIGS / 'vitpose' / 'coco').glob('td-hm_vitpose-*.py'))


def tiny_config(name, arch=TINY_ARCH, deconv=(32, 32)):
    """A shipped config with a tiny backbone/decoder and no pre-trained download."""
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'coco' / name))
    cfg.model.backbone.arch = dict(arch)
    cfg.model.backbone.init_cfg = None
    cfg.model.head.in_channels = arch['embed_dims']
    if cfg.model.head.deconv_out_channels:
        cfg.model.head.deconv_out_channels = deconv
    return cfg
