"""int8 ViTPose on the CPU (onnxruntime QDQ, calibrated on person crops)."""
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpose.apis import inference_topdown, init_model

from helpers import REPO, SHARED_DATA, tiny_config
from vitpose_plugin.deploy import (
    OnnxRuntimeBackbone,
    fold_batchnorm,
    inference_precision,
    set_inference_precision,
)

CLASSIC = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
BOXES = np.array([[20, 10, 200, 250], [90, 30, 240, 230]], np.float32)


def tiny_model():
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = init_model(tiny_config(CLASSIC), None, device='cpu')
    fold_batchnorm(model)
    model.test_cfg['output_heatmaps'] = True
    return model


def test_int8_runs_through_inference_topdown_with_flip_test(coco_dir, images):
    model = tiny_model()
    image = str(images / 'sunglasses.jpg')
    want = inference_topdown(model, image, BOXES)
    set_inference_precision(model, 'int8', calibration=str(coco_dir / 'test_coco.json'))
    assert inference_precision(model) == 'int8'
    assert isinstance(model.backbone, OnnxRuntimeBackbone)
    got = inference_topdown(model, image, BOXES)
    assert model.backbone.calls == 2  # the crops and their flips, int8
    for w, g in zip(want, got):
        peak = w.pred_fields.heatmaps.abs().max()
        # 8-bit activations (256 levels per tensor) through 2 blocks of 4 int8 layers:
        # a few percent of the heatmap peak, far below what a wrong graph gives
        diff = (w.pred_fields.heatmaps - g.pred_fields.heatmaps).abs().max()
        assert 0 < diff <= 0.1 * peak, (diff, peak)
    set_inference_precision(model, 'fp32')  # and back to the PyTorch backbone
    assert not isinstance(model.backbone, OnnxRuntimeBackbone)
    back = inference_topdown(model, image, BOXES)
    assert torch.equal(back[0].pred_fields.heatmaps, want[0].pred_fields.heatmaps)


def test_int8_without_calibration_data_is_a_clear_error():
    with pytest.raises(ValueError, match='int8 needs calibration data'):
        set_inference_precision(tiny_model(), 'int8')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        set_inference_precision(tiny_model(), 'int8', calibration='/nowhere')


def test_calibrate_tool_writes_an_int8_graph_the_demo_takes(coco_dir, tmp_path, images):
    model = tiny_model()
    config = tmp_path / 'tiny.py'
    tiny_config(CLASSIC).dump(str(config))
    torch.save({'state_dict': init_model(tiny_config(CLASSIC), None, device='cpu').state_dict()},
               tmp_path / 'tiny.pth')
    res = subprocess.run([sys.executable, str(REPO / 'tools' / 'calibrate_int8.py'),
                          str(config), str(tmp_path / 'tiny.pth'), str(tmp_path / 'int8.onnx'),
                          '--calibration', str(coco_dir / 'test_coco.json')],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'calibrated on 12 crops' in res.stdout  # the 12 people of the shared images
    import onnx
    ops = {n.op_type for n in onnx.load(str(tmp_path / 'int8.onnx')).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear', 'LayerNormalization', 'Softmax'} <= ops
    set_inference_precision(model, 'int8', onnx_file=str(tmp_path / 'int8.onnx'))
    assert model.backbone.onnx_file == str(tmp_path / 'int8.onnx')


def test_export_tool_int8_writes_a_calibrated_qdq_backbone(coco_dir, tmp_path):
    config = tmp_path / 'tiny.py'
    tiny_config(CLASSIC).dump(str(config))
    torch.save({'state_dict': init_model(tiny_config(CLASSIC), None, device='cpu').state_dict()},
               tmp_path / 'tiny.pth')
    out = tmp_path / 'int8.onnx'
    res = subprocess.run([sys.executable, str(REPO / 'tools' / 'export_onnx.py'), str(config),
                          str(tmp_path / 'tiny.pth'), str(out), '--int8',
                          '--calibration', str(coco_dir / 'test_coco.json')],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    rel = float(re.search(r'max \|int8 - fp32\| = ([0-9.]+)', res.stdout).group(1))
    assert rel < 0.5
    import onnx
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count('DequantizeLinear') >= 2 * 4 * 2  # weights + inputs of 4 linears/block
    res = subprocess.run([sys.executable, str(REPO / 'tools' / 'export_onnx.py'), str(config),
                          str(tmp_path / 'tiny.pth'), str(out), '--int8',
                          '--calibration', str(tmp_path / 'missing.json')],
                         capture_output=True, text=True)
    assert res.returncode != 0 and 'missing.json' in res.stderr


def test_calibration_reads_a_coco_json_with_its_image_folder():
    """COCO's own layout (``person_keypoints_train2017.json`` beside ``train2017/``), as
    coco-mini-train ships it, the benchmark's default calibration set."""
    from vitpose_plugin.deploy.int8 import calibration_crops
    ann = SHARED_DATA / 'coco-mini-train' / 'person_keypoints_train2017.json'
    crops = list(calibration_crops(tiny_model(), str(ann), num=3))
    assert len(crops) == 3 and crops[0].shape == (1, 3, 256, 192)
    assert crops[0].abs().max() > 0  # a real image, normalised
