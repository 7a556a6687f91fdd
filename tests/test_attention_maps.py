"""Keypoint attention maps (TransPose's explanation figure) for TransPose, TokenPose and
ViTPose, through MMPose's inference_topdown and the demo."""
import json

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.apis import inference_topdown, init_model

from helpers import CONFIGS, SHARED_DATA, run_demo, run_main, tiny_config
from vitpose_plugin.visualization import KeypointAttention, overlay_attention

IMAGE = SHARED_DATA / 'images' / 'sunglasses.jpg'
BOXES = np.array([[20, 10, 200, 250], [90, 30, 240, 230]], np.float32)  # in the 256x256 image


def tiny_transpose():
    cfg = Config.fromfile(str(CONFIGS / 'transpose' / 'coco' /
                              'td-hm_transpose-r-a3_8xb32-230e_coco-256x192.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.update(embed_dims=32, num_heads=2, ffn_dims=64)
    cfg.model.head.update(in_channels=32, deconv_out_channels=(32, ))
    return cfg


def tiny_tokenpose():
    cfg = Config.fromfile(str(CONFIGS / 'tokenpose' / 'coco' /
                              'td-hm_tokenpose-t_4xb32-300e_coco-256x192.py'))
    cfg.model.head.update(embed_dims=32, depth=2, num_heads=2, hidden_dims=64)
    return cfg


def build(cfg):
    init_default_scope('mmpose')
    torch.manual_seed(0)
    return init_model(cfg, None, device='cpu')


@pytest.fixture(scope='module')
def image():
    if not IMAGE.is_file():
        pytest.skip(f'shared demo image not found at {IMAGE} (set VITPOSE_SHARED_DATA)')
    return cv2.imread(str(IMAGE))


def crop_warp(model, sample):
    """The pipeline's own image -> input-crop affine for ``sample`` (UDP or plain)."""
    from mmpose.structures.bbox import get_udp_warp_matrix, get_warp_matrix
    udp = any(t.get('use_udp') for t in model.cfg.test_dataloader.dataset.pipeline)
    return (get_udp_warp_matrix if udp else get_warp_matrix)(
        np.asarray(sample.metainfo['input_center'], np.float32),
        np.asarray(sample.metainfo['input_scale'], np.float32), 0.0,
        output_size=tuple(model.cfg.codec['input_size']))


def expected_peak(model, sample, xy_input):
    """Image pixel of a point given in input-crop pixels."""
    return cv2.invertAffineTransform(crop_warp(model, sample)) @ np.array([*xy_input, 1.0])


@pytest.mark.parametrize('make', [tiny_transpose, lambda: tiny_config(
    'td-hm_vitpose-base_8xb64-210e_coco-256x192.py')], ids=['transpose', 'vitpose'])
def test_grid_attention_follows_the_keypoint_into_the_image(make, image):
    """With each token attending only to itself, the map of keypoint k must light up the
    grid cell under k's prediction, warped back to where k is in the image."""
    model = build(make())
    with KeypointAttention(model) as rec:
        samples = inference_topdown(model, image, BOXES)
    assert len(rec.records) == 2  # flip test: the first (unflipped) pass is used
    attn, (h, w) = rec.records[0]
    assert attn.shape == (2, h * w, h * w)
    assert torch.allclose(attn.sum(-1), torch.ones(2, h * w), atol=1e-4)
    rec.records[0] = (torch.eye(h * w).expand(2, -1, -1), (h, w))
    k = 9  # left_wrist; placed at a known point inside each crop (random weights predict
    # anywhere, often outside the crop)
    for sample, (fx, fy) in zip(samples, ((0.21, -0.13), (-0.27, 0.23))):
        center, scale = (np.asarray(sample.metainfo[key]) for key in ('input_center',
                                                                    'input_scale'))
        sample.pred_instances.keypoints[0, k] = center + scale * (fx, fy)
    maps = rec.image_maps(samples, k, image.shape[:2])
    assert maps.shape == (2, *image.shape[:2]) and maps.max() <= 1.0 + 1e-6
    in_w, in_h = model.cfg.codec['input_size']
    for sample, m in zip(samples, maps):
        kx, ky = sample.pred_instances.keypoints[0, k]
        cell_w, cell_h = np.asarray(sample.metainfo['input_scale']) / (w, h)
        cell = [(int(c) + 0.5) * s for c, s in zip(
            expected_peak_cell(model, sample, k, w, h), (in_w / w, in_h / h))]
        px, py = expected_peak(model, sample, cell)
        assert m.max() > 0.5, 'the map has no peak'
        ys, xs = np.nonzero(m > 0.8 * m.max())
        assert abs(xs.mean() - px) < cell_w / 2 and abs(ys.mean() - py) < cell_h / 2
        # the lit cell holds the keypoint itself: its centre is within half a cell
        assert abs(kx - xs.mean()) <= cell_w / 2 + 1 and abs(ky - ys.mean()) <= cell_h / 2 + 1
    if hasattr(model.backbone, 'layers'):  # the switch is restored on leaving the context
        assert not model.backbone.layers[-1].attn.keep_attention


def expected_peak_cell(model, sample, k, w, h):
    """(column, row) of the token grid cell under keypoint k of ``sample``."""
    in_w, in_h = model.cfg.codec['input_size']
    x, y = crop_warp(model, sample) @ np.array([*sample.pred_instances.keypoints[0, k], 1.0])
    return np.clip(int(x / in_w * w), 0, w - 1), np.clip(int(y / in_h * h), 0, h - 1)


def test_tokenpose_map_is_the_keypoint_tokens_row(image):
    model = build(tiny_tokenpose())
    with KeypointAttention(model) as rec:
        samples = inference_topdown(model, image, BOXES[:1])
    attn, (h, w) = rec.records[0]
    k_tokens = 17
    assert attn.shape == (1, k_tokens + h * w, k_tokens + h * w)
    fake = torch.zeros_like(attn)
    cell = 3 * w + 5  # keypoint 4 looks only at visual token (row 3, column 5)
    fake[0, 4, k_tokens + cell] = 1.0
    rec.records[0] = (fake, (h, w))
    grid = rec.token_maps(4, None)
    assert grid.shape == (1, h, w) and grid[0, 3, 5] == 1.0 and grid.sum() == 1.0
    m = rec.image_maps(samples, 4, image.shape[:2])[0]
    in_w, in_h = model.cfg.codec['input_size']
    px, py = expected_peak(model, samples[0], ((5 + 0.5) * in_w / w, (3 + 0.5) * in_h / h))
    assert m.max() > 0.5
    ys, xs = np.nonzero(m > 0.8 * m.max())
    assert abs(xs.mean() - px) < in_w / w and abs(ys.mean() - py) < in_h / h


def test_window_attention_in_the_last_block_is_refused():
    cfg = tiny_config('td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
    cfg.model.backbone.update(attn_type='window', window_size=(4, 4))
    with pytest.raises(ValueError, match='full attention in the last ViT block'):
        KeypointAttention(build(cfg))


def test_overlay_colours_only_where_attention_is():
    rgb = np.full((20, 30, 3), 128, np.uint8)
    maps = np.zeros((2, 20, 30), np.float32)
    maps[0, 5:8, 5:8] = 1.0
    out = overlay_attention(rgb, maps)
    assert (out[0:4] == 128).all() and (out[5:8, 5:8] != 128).any()


def test_demo_draws_the_attention_of_a_named_keypoint(tmp_path, tiny_models, image):  # noqa: F811
    """Both runs and the refusal call the demo's ``main(argv)`` in this process (its
    command line is run by test_demo.py::test_image). The plain run asks for fp32, which
    the attention run uses ('auto' may pick bf16 on CPUs with bf16 units)."""
    plain = tmp_path / 'plain'
    run_main('demo/topdown_demo.py', IMAGE, '--out-dir', plain, '--precision', 'fp32',
             *tiny_models)
    res = run_demo([IMAGE, '--out-dir', tmp_path / 'attn', '--attention-keypoint', 'left_wrist']
                   + tiny_models)
    assert '1/1 input(s) processed' in res.stdout
    a = cv2.imread(str(tmp_path / 'attn' / 'sunglasses.jpg')).astype(int)
    b = cv2.imread(str(plain / 'sunglasses.jpg')).astype(int)
    assert np.abs(a - b).mean() > 1.0  # the overlay changed the picture
    # keypoints are unchanged by recording the attention
    pa = json.load(open(tmp_path / 'attn' / 'sunglasses.jpg.json'))['persons']
    pb = json.load(open(plain / 'sunglasses.jpg.json'))['persons']
    assert len(pa) == len(pb) > 0
    # (the recorded block computes its output as without recording: bit-identical)
    assert [p['keypoints'] for p in pa] == [p['keypoints'] for p in pb]
    with pytest.raises(SystemExit, match="'left_wing' is not a keypoint.*left_wrist"):
        run_main('demo/topdown_demo.py', IMAGE, '--out-dir', tmp_path / 'bad',
                 '--attention-keypoint', 'left_wing', *tiny_models)
