"""Top-down pose estimation: a person detector, then ViTPose (or any plugin config).

    python demo/topdown_demo.py [INPUT] [--out-dir outputs] [--det-model rtmdet-m] [--no-flip]

INPUT is an image, a video, or a folder of them (default: the sample pictures and clip in
demo/resources). For every input the demo writes the picture or video with boxes and
skeletons under its own file name, and ``<file name>.json``:

    {"input": "a.jpg", "width": W, "height": H, "random_weights": false,
     "keypoint_names": [K names],
     "persons": [{"bbox": [x1, y1, x2, y2], "bbox_score": s,
                  "keypoints": [[x, y] x K], "keypoint_scores": [K floats]}]}

Videos have ``"fps"`` and ``"frames": [{"frame": i, "persons": [...]}]`` instead of
``persons``, and every person a ``track_id`` that stays with them across frames.
Coordinates are pixels of the input. Weights are downloaded (MMPose's RTMDet-m person
detector and ViTPose-B by default); pass local files with --det-checkpoint /
--pose-checkpoint, or --random-weights for an offline smoke run. --bboxes FILE skips
the detector.
"""
import argparse
import json
import os
import os.path as osp
import sys
from pathlib import Path

import cv2
import mmcv
import numpy as np
import torch
from mmengine.logging import print_log
from tqdm import tqdm

from vitpose_plugin.apis.detectors import DETECTOR_PRESETS, detector_classes
from vitpose_plugin.apis.topdown_pipeline import (
    RANDOM_BANNER,
    InputError,
    TopdownPipeline,
    build_detector,
    load_model,
    select_dataset,
)
from vitpose_plugin.apis.tracking import PoseTracker
from vitpose_plugin.deploy import PRECISIONS, fold_batchnorm, set_inference_precision

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = str(REPO / 'demo' / 'resources')
DEFAULT_POSE_CONFIG = str(REPO / 'configs' / 'vitpose' / 'coco' /
                          'td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
DEFAULT_POSE_CHECKPOINT = (
    'https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_ViTPose-base_8xb64-210e_coco-256x192-216eae50_20230314.pth')
IMAGE_EXTS = {'.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'}
VIDEO_EXTS = {'.mp4', '.avi', '.mov', '.mkv', '.webm'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('input', nargs='?', default=DEFAULT_INPUT,
                   help='image, video, or folder of them (default: demo/resources)')
    p.add_argument('--det-model', choices=sorted(DETECTOR_PRESETS), default='rtmdet-m',
                   help='detector preset (config + weights); --det-config/--det-checkpoint '
                   'override them')
    p.add_argument('--det-config')
    p.add_argument('--det-checkpoint')
    p.add_argument('--pose-config', default=DEFAULT_POSE_CONFIG)
    p.add_argument('--pose-checkpoint', default=DEFAULT_POSE_CHECKPOINT)
    p.add_argument('--bboxes', metavar='FILE',
                   help='JSON of person boxes to use instead of the detector: '
                   '{"a.jpg": [[x1, y1, x2, y2, score], ...]} (frame indices "0", "1", ... '
                   'for one video)')
    p.add_argument('--dataset', metavar='NAME',
                   help='for multi-dataset / ViTPose+ models: the dataset whose head, '
                   'expert, keypoints and skeleton to use (coco, aic, mpii, ap10k, ...)')
    p.add_argument('--out-dir', default='outputs')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--det-cat-id', type=int, nargs='+',
                   help='detector classes to keep (default: person; COCO animals for animal '
                   'datasets)')
    p.add_argument('--bbox-thr', type=float, default=0.3, help='min person box score')
    p.add_argument('--nms-thr', type=float, default=0.3, help='IoU of box NMS')
    p.add_argument('--kpt-thr', type=float, default=0.3, help='min keypoint score drawn')
    p.add_argument('--no-flip', action='store_true',
                   help='skip the flip test: about 2x faster pose, slightly less accurate')
    p.add_argument('--track-method', choices=['iou', 'oks'], default='iou',
                   help='videos: match persons across frames by box IoU or keypoint OKS')
    p.add_argument('--smooth', action='store_true',
                   help="videos: One-Euro filter on each person's keypoints")
    p.add_argument('--draw-heatmap', action='store_true', help='overlay the heatmaps')
    p.add_argument('--attention-keypoint', metavar='NAME',
                   help='overlay which image regions this keypoint (e.g. left_wrist) attends '
                   'to in the last attention layer (TransPose, TokenPose, ViTPose)')
    p.add_argument('--precision', choices=PRECISIONS, default='auto',
                   help='pose inference precision (auto: bf16 on CPUs with bf16 units and '
                   'GPUs, else int8 when --calibration or an int8 --onnx-file is given, '
                   'else fp32; logged; bf16: weights in bf16; fp16: autocast; int8: '
                   'onnxruntime)')
    p.add_argument('--calibration', help='int8: images (a folder) or a COCO json of person '
                   'crops to calibrate on; int8 needs it unless --onnx-file is a calibrated '
                   'int8 graph (tools/calibrate_int8.py)')
    p.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                   help="run the pose backbone with onnxruntime (exported on start, or "
                   "--onnx-file); the head, flip test and decoding stay MMPose's")
    p.add_argument('--onnx-file', help='a backbone graph: fp32 from tools/export_onnx.py '
                   '--part backbone for --backend onnxruntime, or int8 from '
                   'tools/calibrate_int8.py for --precision int8 / auto')
    p.add_argument('--random-weights', action='store_true',
                   help='run without checkpoints (random weights; for smoke tests only)')
    return p.parse_args(argv)


def build_pipeline(args) -> TopdownPipeline:
    from mmpose.apis import init_model

    if args.random_weights:
        print_log(f'WARNING: --random-weights: {RANDOM_BANNER.lower()}', logger='current',
                  level=30)
    pose_ckpt = None if args.random_weights else args.pose_checkpoint
    pose = load_model('pose', init_model, args.pose_config, pose_ckpt, args.device)
    select_dataset(pose, args.dataset)
    pose.test_cfg['flip_test'] = pose.test_cfg.get('flip_test', False) and not args.no_flip
    fold_batchnorm(pose)  # inference only: same heatmaps, fewer operations
    if args.backend == 'onnxruntime':
        if args.precision not in ('fp32', 'auto') or args.attention_keypoint:
            raise InputError('--backend onnxruntime runs the fp32 graph only, without '
                             '--precision bf16/fp16/int8 or --attention-keypoint')
        from vitpose_plugin.deploy import use_onnxruntime
        try:
            use_onnxruntime(pose, args.onnx_file)
        except (FileNotFoundError, ValueError) as e:
            raise InputError(f'--onnx-file: {e}') from e
        print_log(f'pose backbone: onnxruntime, {pose.backbone.onnx_file}', logger='current')
    else:
        # the attention overlay reads the PyTorch model's fp32 attention maps
        precision = 'fp32' if args.attention_keypoint and args.precision == 'auto' \
            else args.precision
        options = {}
        if precision in ('int8', 'auto'):  # a given int8 graph is used as it is
            options = dict(calibration=args.calibration, onnx_file=args.onnx_file)
        try:
            set_inference_precision(pose, precision, **options)
        except (ValueError, FileNotFoundError) as e:
            raise InputError(f'--precision {args.precision}: {e}') from e
    attention = None
    if args.attention_keypoint:
        from vitpose_plugin.visualization import KeypointAttention
        names = pose.dataset_meta['keypoint_name2id']
        if args.attention_keypoint not in names:
            raise InputError(f'--attention-keypoint {args.attention_keypoint!r} is not a keypoint '
                             f'of this model; choose one of: {", ".join(names)}')
        try:
            attention = (KeypointAttention(pose), names[args.attention_keypoint])
        except ValueError as e:
            raise InputError(f'--attention-keypoint: {e}') from e
    detector, classes = None, args.det_cat_id
    if args.bboxes is None:
        if classes is None:
            try:
                classes = detector_classes(args.det_model, args.dataset)
            except ValueError as e:
                raise InputError(str(e)) from e
        detector = build_detector(args.det_model, args.det_config, args.det_checkpoint,
                                  args.device, args.random_weights)
    return TopdownPipeline(pose, detector, classes or (0, ), args.bbox_thr, args.nms_thr,
                           args.kpt_thr, args.draw_heatmap, attention, args.random_weights)


# ------------------------------------------------------------------- inputs
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


def _boxes(entry, where: str) -> np.ndarray:
    if not isinstance(entry, list):
        raise InputError(f'{where}: expected a list of [x1, y1, x2, y2, score], got '
                         f'{type(entry).__name__}')
    for j, box in enumerate(entry):
        if not (isinstance(box, list) and len(box) == 5 and
                all(isinstance(v, (int, float)) for v in box)) or box[2] <= box[0] or \
                box[3] <= box[1]:
            raise InputError(f'{where}[{j}]: expected [x1, y1, x2, y2, score] with x2 > x1 '
                             f'and y2 > y1, got {box!r}')
    return np.asarray(entry, np.float32).reshape(-1, 5)


def load_bboxes(path: str, inputs, single_video: bool):
    """{input file name: (N, 5) boxes} (a video: {frame index: (N, 5)}), validated."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f'--bboxes {path}: {e}') from e
    if not isinstance(data, dict):
        raise InputError(f'--bboxes {path}: expected a JSON object keyed by file name'
                         + (' or frame index' if single_video else ''))
    if single_video:
        return {osp.basename(inputs[0]): {
            _frame(k, path): _boxes(v, f'{path}: frame {k!r}') for k, v in data.items()}}
    out = {}
    for name, entry in data.items():
        if isinstance(entry, dict):  # a video in a folder: {frame: boxes}
            out[name] = {_frame(k, path): _boxes(v, f'{path}: {name!r} frame {k!r}')
                         for k, v in entry.items()}
        else:
            out[name] = _boxes(entry, f'{path}: {name!r}')
    return out


def _frame(key, path):
    if not str(key).isdigit():
        raise InputError(f'--bboxes {path}: frame key {key!r} is not a frame index')
    return int(key)


class Runner:
    """Runs the pipeline over the inputs and writes pictures, videos and JSON."""

    def __init__(self, pipeline: TopdownPipeline, args, bboxes=None):
        self.pipeline, self.args, self.bboxes = pipeline, args, bboxes
        self.missing = []  # inputs / frames the --bboxes file has no entry for

    def boxes(self, img, name: str, frame=None):
        if self.bboxes is None:
            return self.pipeline.detect(img)
        entry = self.bboxes.get(name)
        if frame is not None and isinstance(entry, dict):
            entry = entry.get(frame)
        if entry is None or isinstance(entry, dict):
            self.missing.append(name if frame is None else f'{name} frame {frame}')
            return np.zeros((0, 5), np.float32)
        return entry

    def _meta(self, path, img):
        return {'input': osp.basename(path), 'width': int(img.shape[1]),
                'height': int(img.shape[0]), 'random_weights': bool(self.args.random_weights),
                'keypoint_names': self.pipeline.keypoint_names}

    def image(self, path):
        img = read_image(path)
        boxes = self.boxes(img, osp.basename(path))
        sample, maps = self.pipeline.estimate(img, boxes)
        persons = self.pipeline.persons(boxes, sample) if sample is not None else []
        out = osp.join(self.args.out_dir, osp.basename(path))
        cv2.imwrite(out, self.pipeline.draw(img, boxes, sample, maps))
        with open(out + '.json', 'w') as f:
            json.dump(dict(self._meta(path, img), persons=persons), f, indent=1)
        return len(persons)

    def video(self, path):
        if not osp.isfile(path):
            raise InputError(f'{path}: no such file')
        video = mmcv.VideoReader(path)
        if not video.opened:
            raise InputError(f'{path}: cannot open the video')
        fps = video.fps or 25.0
        pose_meta = self.pipeline.pose.dataset_meta
        tracker = PoseTracker(self.args.track_method, sigmas=pose_meta.get('sigmas'),
                              smooth_fps=fps if self.args.smooth else None)
        out = osp.join(self.args.out_dir, osp.basename(path))
        writer, frames, first = None, [], None
        try:
            for img in tqdm(video, total=video.frame_cnt or None, desc=osp.basename(path),
                            unit='frame', leave=False):
                first = img if first is None else first
                boxes = self.boxes(img, osp.basename(path), len(frames))
                sample, maps = self.pipeline.estimate(img, boxes)
                ids = None
                if sample is not None:
                    ids = tracker.update(boxes, sample.pred_instances.keypoints)
                persons = self.pipeline.persons(boxes, sample, ids) if ids is not None else []
                vis = self.pipeline.draw(img, boxes, sample, maps, ids)
                if writer is None:  # the picture track keeps the input's name (.mp4)
                    writer = cv2.VideoWriter(out if out.lower().endswith('.mp4') else
                                             out + '.mp4',
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
        with open(out + '.json', 'w') as f:
            json.dump(dict(self._meta(path, first), fps=fps, frames=frames), f, indent=1)
        return sum(len(fr['persons']) for fr in frames)


def main(argv=None):
    args = parse_args(argv)
    try:
        inputs = collect_inputs(args.input)
        single_video = len(inputs) == 1 and Path(inputs[0]).suffix.lower() in VIDEO_EXTS \
            and not osp.isdir(args.input)
        bboxes = load_bboxes(args.bboxes, inputs, single_video) if args.bboxes else None
        os.makedirs(args.out_dir, exist_ok=True)
        runner = Runner(build_pipeline(args), args, bboxes)
    except InputError as e:
        raise SystemExit(f'error: {e}')
    failed = []
    with torch.no_grad():
        for path in tqdm(inputs, desc='topdown demo', unit='input', disable=len(inputs) < 2):
            video = Path(path).suffix.lower() in VIDEO_EXTS
            try:
                n = (runner.video if video else runner.image)(path)
                tqdm.write(f'{path}: {n} person(s)')
            except InputError as e:
                failed.append(str(e))
                tqdm.write(f'error: {e}')
    if runner.missing:
        print(f'warning: --bboxes {args.bboxes} has no boxes for {len(runner.missing)} '
              f'input(s) / frame(s), which get no persons: {", ".join(runner.missing[:20])}'
              + (' ...' if len(runner.missing) > 20 else ''), file=sys.stderr)
    done = len(inputs) - len(failed)
    print(f'done: {done}/{len(inputs)} input(s) processed, results in {args.out_dir}')
    if failed:
        print(f'{len(failed)} failed:\n' + '\n'.join(f'  {m}' for m in failed), file=sys.stderr)
        raise SystemExit(1)


if __name__ == '__main__':
    main()
