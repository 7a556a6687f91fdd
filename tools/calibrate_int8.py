"""Make an int8 ViTPose backbone for CPUs: calibrate on person crops, quantize, check.

    python tools/calibrate_int8.py CONFIG CHECKPOINT OUT.onnx
        [--calibration COCO_JSON | FOLDER] [--num 256] [--method percentile|minmax]

The backbone's linear layers become int8 (onnxruntime QDQ, per-channel weights, uint8
activations whose ranges are calibrated on --calibration: a COCO json, whose person
boxes are cropped as the test pipeline does, or a folder of images with an optional
bboxes.json in the demo's --bboxes format; default: the shared coco-mini-train people,
``vitpose_plugin.deploy.int8.DEFAULT_CALIBRATION``, as for ``tools/export_onnx.py
--int8``). The tool then compares int8 with fp32 heatmaps on those crops. Use the graph with
``python demo/topdown_demo.py --precision int8 --onnx-file OUT.onnx`` or
``set_inference_precision(model, 'int8', onnx_file=OUT.onnx)``.
"""
import argparse

import torch
from mmpose.apis import init_model

from vitpose_plugin.deploy import fold_batchnorm
from vitpose_plugin.deploy.int8 import (
    add_calibration_args,
    calibration_crops,
    check_calibration,
    quantize_backbone_graph,
)
from vitpose_plugin.deploy.onnx import onnxruntime_session


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help='pose weights (any layout the plugin reads)')
    p.add_argument('out', help='the int8 .onnx file to write')
    add_calibration_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        check_calibration(args.calibration)
    except FileNotFoundError as e:
        raise SystemExit(f'error: {e}')
    model = init_model(args.config, args.checkpoint, device='cpu')
    fold_batchnorm(model)
    try:
        quantize_backbone_graph(model, args.out, args.calibration, args.num, args.method)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    run = onnxruntime_session(args.out)
    diffs, peaks = [], []
    with torch.no_grad():
        for crop in calibration_crops(model, args.calibration, args.num):
            want = model.head.forward(model.backbone(crop))
            got = model.head.forward(run(crop))
            diffs.append(float((got - want).abs().max()))
            peaks.append(float(want.abs().max()))
    print(f'{args.out}: int8 linear layers, calibrated on {len(diffs)} crops of '
          f'{args.calibration} ({args.method}); heatmaps vs fp32 on those crops: max |diff| '
          f'{max(diffs):.4f}, mean of per-crop max {sum(diffs) / len(diffs):.4f} '
          f'(heatmap peaks {min(peaks):.3f}..{max(peaks):.3f})')


if __name__ == '__main__':
    main()
