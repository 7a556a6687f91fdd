"""int8 ViTPose on the CPU (onnxruntime QDQ, calibrated on person crops)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpose.apis import inference_topdown, init_model

from helpers import REPO, SHARED_DATA, load_script, tiny_config
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


def load_demo():
    return load_script('demo/topdown_demo.py')


def test_calibrate_tool_writes_an_int8_graph_the_demo_takes(coco_dir, tmp_path, tiny_models):
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
    # the documented command: the demo takes the calibrated graph, no calibration data
    demo = load_demo()
    pipeline = demo.build_pipeline(demo.parse_args(
        tiny_models + ['--precision', 'int8', '--onnx-file', str(tmp_path / 'int8.onnx')]))
    assert inference_precision(pipeline.pose) == 'int8'
    assert pipeline.pose.backbone.onnx_file == str(tmp_path / 'int8.onnx')


def test_int8_session_runs_operators_in_sequence_on_torchs_threads(tmp_path):
    """One inter-op thread, sequential execution, torch's intra-op threads (one per
    physical core), no spinning between runs (PyTorch runs the head in between)."""
    import onnxruntime as ort

    from vitpose_plugin.deploy import export_onnx, onnxruntime_session
    model = tiny_model()
    export_onnx(model, str(tmp_path / 'b.onnx'), (256, 192), part='backbone')
    opts = onnxruntime_session(str(tmp_path / 'b.onnx')).session.get_session_options()
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.inter_op_num_threads == 1
    assert opts.intra_op_num_threads == torch.get_num_threads()
    assert opts.get_session_config_entry('session.intra_op.allow_spinning') == '0'


def test_int8_tools_share_one_calibration_default_and_check(tmp_path):
    from vitpose_plugin.deploy.int8 import DEFAULT_CALIBRATION
    defaults = []
    for tool in ('calibrate_int8', 'export_onnx'):
        module = load_script(f'tools/{tool}.py')
        args = module.parse_args(['c.py', 'w.pth', str(tmp_path / 'o.onnx')])
        defaults.append((args.calibration, args.num, args.method))
        # checked before any model is read (c.py and w.pth do not exist either)
        argv = ['c.py', 'w.pth', str(tmp_path / 'o.onnx'), '--calibration',
                str(tmp_path / 'missing.json')] + (['--int8'] if tool == 'export_onnx' else [])
        with pytest.raises(SystemExit, match='missing.json does not exist'):
            module.main(argv)
    assert defaults[0] == defaults[1] == (DEFAULT_CALIBRATION, 256, 'percentile')
    assert DEFAULT_CALIBRATION == os.path.normpath(
        SHARED_DATA / 'coco-mini-train' / 'person_keypoints_train2017.json')


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
