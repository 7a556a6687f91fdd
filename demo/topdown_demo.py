"""Top-down pose estimation: an MMDetection person detector, then ViTPose.

    python demo/topdown_demo.py INPUT [--out-dir outputs] [--device cpu]

INPUT is an image, a folder of images/videos, or a video. For every input the
demo writes a picture (or video) with boxes and skeletons and ``<name>.json``:

    {"input": "a.jpg", "width": W, "height": H, "random_weights": false,
     "keypoint_names": [17 names],
     "persons": [{"bbox": [x1, y1, x2, y2], "bbox_score": s,
                  "keypoints": [[x, y] x 17], "keypoint_scores": [17 floats]}]}

(videos: ``"frames": [{"frame": i, "persons": [...]}]`` instead of ``persons``).
Coordinates are pixels of the input. The default weights are downloaded
(MMDetection's Faster R-CNN R50-FPN, MMPose's ViTPose-B); pass local files with
--det-checkpoint / --pose-checkpoint, or --random-weights for an offline smoke run.
"""
import argparse
import json
import os
import os.path as osp
import sys
from pathlib import Path

import cv2
import mmcv
import mmdet
import numpy as np
import torch
from mmcv.ops import nms
from mmengine.logging import print_log
from tqdm import tqdm

from vitpose_plugin.deploy import fold_batchnorm, set_inference_precision

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DET_CONFIG = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'faster_rcnn',
                              'faster-rcnn_r50_fpn_1x_coco.py')
DEFAULT_DET_CHECKPOINT = (
    'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/'
    'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth')
DEFAULT_POSE_CONFIG = str(REPO / 'configs' / 'vitpose' / 'coco' /
                          'td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
DEFAULT_POSE_CHECKPOINT = (
    'https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_ViTPose-base_8xb64-210e_coco-256x192-216eae50_20230314.pth')
IMAGE_EXTS = {'.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'}
VIDEO_EXTS = {'.mp4', '.avi', '.mov', '.mkv', '.webm'}
RANDOM_BANNER = 'RANDOM WEIGHTS - NOT A REAL PREDICTION'


class InputError(Exception):
    """An input that cannot be processed; the message names the file."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('input', help='image, video, or folder of them')
    p.add_argument('--det-config', default=DEFAULT_DET_CONFIG)
    p.add_argument('--det-checkpoint', default=DEFAULT_DET_CHECKPOINT)
    p.add_argument('--pose-config', default=DEFAULT_POSE_CONFIG)
    p.add_argument('--pose-checkpoint', default=DEFAULT_POSE_CHECKPOINT)
    p.add_argument('--out-dir', default='outputs')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--det-cat-id', type=int, default=0, help='person class of the detector')
    p.add_argument('--bbox-thr', type=float, default=0.3, help='min person box score')
    p.add_argument('--nms-thr', type=float, default=0.3, help='IoU of box NMS')
    p.add_argument('--kpt-thr', type=float, default=0.3, help='min keypoint score drawn')
    p.add_argument('--draw-heatmap', action='store_true', help='overlay the heatmaps')
    p.add_argument('--attention-keypoint', metavar='NAME',
                   help='overlay which image regions this keypoint (e.g. left_wrist) attends '
                   'to in the last attention layer (TransPose, TokenPose, ViTPose)')
    p.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32',
                   help='pose inference precision (bf16: autocast, CPU or GPU)')
    p.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                   help='run the pose network with onnxruntime (exported on start, or '
                   '--onnx-file); preprocessing, flip test and decoding stay MMPose\'s')
    p.add_argument('--onnx-file', help='a graph from tools/export_onnx.py for --backend '
                   'onnxruntime')
    p.add_argument('--random-weights', action='store_true',
                   help='run without checkpoints (random weights; for smoke tests only)')
    return p.parse_args(argv)


def _load(what, init, config, checkpoint, args):
    if args.random_weights:
        checkpoint = None
    elif not checkpoint:
        raise SystemExit(f'error: no {what} checkpoint given (use --{what}-checkpoint FILE)')
    elif '://' not in checkpoint and not osp.isfile(checkpoint):
        raise SystemExit(f'error: {what} checkpoint {checkpoint} does not exist')
    if not osp.isfile(config):
        raise SystemExit(f'error: {what} config {config} does not exist')
    try:
        return init(config, checkpoint, device=args.device)
    except OSError as e:  # URLError / HTTPError / socket errors
        if checkpoint and '://' in checkpoint:
            raise SystemExit(
                f'error: could not download the {what} checkpoint {checkpoint}: {e}\n'
                f'Download it on a machine with internet access and pass '
                f'--{what}-checkpoint /path/to/file.pth (or --random-weights for a '
                'smoke run).')
        raise


def build_models(args):
    from mmdet.apis import init_detector
    from mmpose.apis import init_model
    from mmpose.registry import VISUALIZERS
    from mmpose.utils import adapt_mmdet_pipeline

    if args.random_weights:
        print_log(f'WARNING: --random-weights: {RANDOM_BANNER.lower()}', logger='current',
                  level=30)
    detector = _load('det', init_detector, args.det_config, args.det_checkpoint, args)
    detector.cfg = adapt_mmdet_pipeline(detector.cfg)
    pose = _load('pose', init_model, args.pose_config, args.pose_checkpoint, args)
    pose.test_cfg['output_heatmaps'] = args.draw_heatmap
    fold_batchnorm(pose)  # inference only: same heatmaps, fewer operations
    if args.backend == 'onnxruntime':
        if args.precision != 'fp32' or args.attention_keypoint:
            raise InputError('--backend onnxruntime runs the fp32 graph only, without '
                             '--precision bf16/fp16 or --attention-keypoint')
        from vitpose_plugin.deploy import use_onnxruntime
        try:
            use_onnxruntime(pose, args.onnx_file)
        except FileNotFoundError as e:
            raise InputError(f'--onnx-file: {e}') from e
        print_log(f'pose network: onnxruntime, {pose.backbone.onnx_file}', logger='current')
    else:
        set_inference_precision(pose, args.precision)
    args.attention = None
    if args.attention_keypoint:
        from vitpose_plugin.visualization import KeypointAttention
        names = pose.dataset_meta['keypoint_name2id']
        if args.attention_keypoint not in names:
            raise InputError(f'--attention-keypoint {args.attention_keypoint!r} is not a keypoint '
                             f'of this model; choose one of: {", ".join(names)}')
        try:
            args.attention = (KeypointAttention(pose), names[args.attention_keypoint])
        except ValueError as e:
            raise InputError(f'--attention-keypoint: {e}') from e
    visualizer = VISUALIZERS.build(dict(pose.cfg.visualizer, name='topdown_demo'))
    visualizer.set_dataset_meta(pose.dataset_meta)
    return detector, pose, visualizer


def detect_persons(detector, img, args):
    """(N, 5) person boxes [x1, y1, x2, y2, score] after threshold and NMS."""
    from mmdet.apis import inference_detector

    pred = inference_detector(detector, img).pred_instances
    keep = (pred.labels == args.det_cat_id) & (pred.scores > args.bbox_thr)
    boxes, scores = pred.bboxes[keep].float().cpu(), pred.scores[keep].float().cpu()
    if len(boxes):
        dets, _ = nms(boxes, scores, args.nms_thr)
        return dets.numpy()
    return np.zeros((0, 5), np.float32)


def estimate(detector, pose, visualizer, img, args):
    """Persons (JSON-ready) and the visualised BGR image for one BGR image."""
    from mmpose.apis import inference_topdown
    from mmpose.structures import merge_data_samples

    dets = detect_persons(detector, img, args)
    persons, sample = [], None
    rgb = img[..., ::-1].copy()
    if len(dets):  # inference_topdown treats "no boxes" as "the whole image"
        if args.attention is None:
            samples = inference_topdown(pose, img, dets[:, :4])
        else:
            from vitpose_plugin.visualization import overlay_attention
            recorder, keypoint_id = args.attention
            with recorder:
                samples = inference_topdown(pose, img, dets[:, :4])
            rgb = overlay_attention(rgb, recorder.image_maps(samples, keypoint_id, img.shape[:2]))
        sample = merge_data_samples(samples)
        inst = sample.pred_instances
        for i, det in enumerate(dets):
            persons.append(dict(
                bbox=[round(float(v), 2) for v in det[:4]],
                bbox_score=round(float(det[4]), 4),
                keypoints=[[round(float(x), 2), round(float(y), 2)] for x, y in inst.keypoints[i]],
                keypoint_scores=[round(float(s), 4) for s in inst.keypoint_scores[i]]))
    if sample is not None:
        visualizer.add_datasample('result', rgb, data_sample=sample, draw_gt=False,
                                  draw_heatmap=args.draw_heatmap, draw_bbox=True,
                                  kpt_thr=args.kpt_thr, show=False)
        drawn = visualizer.get_image()
        if args.draw_heatmap and drawn.shape[0] == 2 * rgb.shape[0]:
            # MMPose stacks the heatmaps under the picture; blend them onto it instead
            h = rgb.shape[0]
            drawn = cv2.addWeighted(drawn[:h], 0.6, drawn[h:], 0.4, 0)
        rgb = drawn
    vis = np.ascontiguousarray(rgb[..., ::-1])
    if args.random_weights:
        font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), _ = cv2.getTextSize(RANDOM_BANNER, font, 1.0, 2)
        scale = min(1.0, (vis.shape[1] - 8) / tw)  # fit the banner to the image width
        cv2.rectangle(vis, (0, 0), (vis.shape[1], int(th * scale) + 10), (0, 0, 0), -1)
        cv2.putText(vis, RANDOM_BANNER, (4, int(th * scale) + 4), font, scale, (0, 0, 255),
                    max(1, round(2 * scale)))
    return persons, vis


def read_image(path):
    """BGR uint8; grayscale, RGBA and 16-bit files are converted by OpenCV."""
    if not osp.isfile(path):
        raise InputError(f'{path}: no such file')
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f'{path}: cannot read it as an image (unsupported or corrupt file)')
    return img


def collect_inputs(path):
    if osp.isdir(path):
        files = sorted(str(p) for p in Path(path).iterdir()
                       if p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
        if not files:
            raise InputError(f'{path}: the folder holds no images ({", ".join(sorted(IMAGE_EXTS))})'
                             f' or videos ({", ".join(sorted(VIDEO_EXTS))})')
        return files
    if not osp.exists(path):
        raise InputError(f'{path}: no such file or folder')
    return [path]


def _meta(path, img, args, pose):
    return {'input': osp.basename(path), 'width': int(img.shape[1]), 'height': int(img.shape[0]),
            'random_weights': bool(args.random_weights),
            'keypoint_names': [pose.dataset_meta['keypoint_id2name'][i]
                               for i in range(pose.dataset_meta['num_keypoints'])]}


def process_image(path, models, args):
    img = read_image(path)
    persons, vis = estimate(*models, img, args)
    stem = Path(path).stem
    cv2.imwrite(osp.join(args.out_dir, stem + '.jpg'), vis)
    out = dict(_meta(path, img, args, models[1]), persons=persons)
    with open(osp.join(args.out_dir, stem + '.json'), 'w') as f:
        json.dump(out, f, indent=1)
    return len(persons)


def process_video(path, models, args):
    if not osp.isfile(path):
        raise InputError(f'{path}: no such file')
    video = mmcv.VideoReader(path)
    if not video.opened:
        raise InputError(f'{path}: cannot open the video')
    fps = video.fps or 25.0
    stem = Path(path).stem
    writer, frames, first = None, [], None
    try:
        for img in tqdm(video, total=video.frame_cnt or None, desc=osp.basename(path),
                        unit='frame', leave=False):
            first = img if first is None else first
            persons, vis = estimate(*models, img, args)
            if writer is None:
                writer = cv2.VideoWriter(osp.join(args.out_dir, stem + '.mp4'),
                                         cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                         (vis.shape[1], vis.shape[0]))
            writer.write(vis)
            frames.append(dict(frame=len(frames), persons=persons))
    finally:
        video.vcap.release()
        if writer is not None:
            writer.release()
    if first is None:
        raise InputError(f'{path}: the video has no readable frames')
    out = dict(_meta(path, first, args, models[1]), fps=fps, frames=frames)
    with open(osp.join(args.out_dir, stem + '.json'), 'w') as f:
        json.dump(out, f, indent=1)
    return sum(len(fr['persons']) for fr in frames)


def main(argv=None):
    args = parse_args(argv)
    try:
        inputs = collect_inputs(args.input)
    except InputError as e:
        raise SystemExit(f'error: {e}')
    os.makedirs(args.out_dir, exist_ok=True)
    try:
        models = build_models(args)
    except InputError as e:
        raise SystemExit(f'error: {e}')
    failed = []
    with torch.no_grad():
        for path in tqdm(inputs, desc='topdown demo', unit='input', disable=len(inputs) < 2):
            video = Path(path).suffix.lower() in VIDEO_EXTS
            try:
                n = (process_video if video else process_image)(path, models, args)
                tqdm.write(f'{path}: {n} person(s)')
            except InputError as e:
                failed.append(str(e))
                tqdm.write(f'error: {e}')
    done = len(inputs) - len(failed)
    print(f'done: {done}/{len(inputs)} input(s) processed, results in {args.out_dir}')
    if failed:
        print(f'{len(failed)} failed:\n' + '\n'.join(f'  {m}' for m in failed), file=sys.stderr)
        raise SystemExit(1)


if __name__ == '__main__':
    main()
