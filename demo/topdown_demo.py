"""Top-down pose estimation: a person detector, then ViTPose (or any plugin config).

    python demo/topdown_demo.py [INPUT] [--out-dir outputs] [--det-model rtmdet-m] [--no-flip]

INPUT is an image, a video, or a folder of them (default: the sample pictures and clip in
demo/resources). For every input the demo writes the picture or video with boxes and
skeletons under its own file name, and ``<file name>.json``:

    {"input": "a.jpg", "width": W, "height": H, "random_weights": false,
     "keypoint_names": [K names],
     "persons": [{"bbox": [x1, y1, x2, y2], "bbox_score": s,
                  "keypoints": [[x, y] x K], "keypoint_scores": [K floats]}]}

Videos have ``"fps"``, ``"complete"`` and ``"frames": [{"frame": i, "persons": [...]}]``
instead of ``persons``, and every person a ``track_id`` that stays with them across
frames. Coordinates are pixels of the input. ``--json-format mmpose`` writes MMPose's
demo layout instead (``meta_info`` + ``instance_info``). Weights are downloaded (MMPose's
RTMDet-m person detector and ViTPose-B by default); pass local files with
--det-checkpoint / --pose-checkpoint, or --random-weights for an offline smoke run.
--bboxes FILE skips the detector.

Outputs are written to temporary names and renamed when complete; a video stopped by an
error, Ctrl-C or SIGTERM keeps every finished frame (a playable video and its JSON), and
its frames are also streamed to ``<file name>.jsonl`` while it runs. An output that would
replace an input is refused before anything is written.
"""
import argparse
import math
import os
import os.path as osp
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import cv2
import mmcv
import numpy as np
import torch
from mmengine.logging import print_log
from tqdm import tqdm

from vitpose_plugin.apis.detectors import (
    DETECTOR_PRESETS,
    detector_classes,
    set_detector_precision,
)
from vitpose_plugin.apis.inputs import (  # noqa: F401  (read_image: used by tests)
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTS,
    VIDEO_EXTS,
    check_box_extent,
    check_pixels,
    collect_inputs,
    is_video,
    load_bboxes,
    read_image,
)
from vitpose_plugin.apis.outputs import (
    Terminated,
    VideoOutput,
    jsonable,
    plan_outputs,
    signals_deferred,
    to_json,
    write_atomic,
)
from vitpose_plugin.apis.topdown_pipeline import (
    RANDOM_BANNER,
    InputError,
    TopdownPipeline,
    build_detector,
    load_model,
    select_dataset,
)
from vitpose_plugin.apis.tracking import PoseTracker
from vitpose_plugin.deploy import (
    PRECISIONS,
    fold_batchnorm,
    inference_precision,
    set_inference_precision,
)
from vitpose_plugin.deploy.auto import COMPILE_MIN_IMAGES, choose_compile
from vitpose_plugin.deploy.precision import resolve_precision
from vitpose_plugin.deploy.torch_compile import compiler_available

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = str(REPO / 'demo' / 'resources')
DEFAULT_POSE_CONFIG = str(REPO / 'configs' / 'vitpose' / 'coco' /
                          'td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
DEFAULT_POSE_CHECKPOINT = (
    'https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_ViTPose-base_8xb64-210e_coco-256x192-216eae50_20230314.pth')
RANDOM_MAX_PERSONS = 3  # --random-weights: the detector's best boxes kept per frame


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
    p.add_argument('--out-dir', default='outputs',
                   help='where to write; never an input folder whose files it would replace')
    p.add_argument('--json-format', choices=['plugin', 'mmpose'], default='plugin',
                   help="plugin: this demo's layout (docs/demo.md); mmpose: MMPose demo's "
                   '--save-predictions layout (meta_info + instance_info)')
    p.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS, metavar='N',
                   help='refuse images and video frames of more pixels, read from the '
                   f'header before decoding (default {DEFAULT_MAX_PIXELS / 1e6:g} million)')
    p.add_argument('--max-persons', type=int, metavar='N',
                   help='keep the N best detected boxes per frame (default: all; '
                   f'{RANDOM_MAX_PERSONS} with --random-weights)')
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
                   help='pose inference precision (auto: bf16 on CPUs with AMX and on '
                   'GPUs, else int8 when --calibration or an int8 --onnx-file is given, '
                   'else fp32; logged; bf16: weights in bf16; fp16: autocast; int8: '
                   'onnxruntime; the detector follows in bf16 and fp16)')
    p.add_argument('--compile', choices=['auto', 'on', 'off'], default='auto',
                   help='run the pose model and the detector through '
                   'torch.compile (inductor, weights frozen): the fastest bf16 path on '
                   'CPUs, after compiling once per batch '
                   'size (tens of seconds on a 2-core CPU; cached on disk). auto: on for '
                   'bf16 on a CPU with a C++ compiler, for a video or at least '
                   f'{COMPILE_MIN_IMAGES} images; logged')
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


def job_images(inputs) -> Optional[int]:
    """How many images a job holds; None when it holds a video (a long job)."""
    return None if any(is_video(p) for p in inputs) else len(inputs)


def decide_compile(args, precision: str, images: Optional[int]) -> bool:
    """``--compile``'s choice for the resolved pose ``precision`` (logged)."""
    if args.compile == 'off':
        return False
    refused = ('--backend onnxruntime' if args.backend == 'onnxruntime' else
               '--attention-keypoint' if args.attention_keypoint else
               f'--precision {precision}' if precision not in ('fp32', 'bf16') else None)
    if args.compile == 'on':
        if refused:
            raise InputError(f'--compile on runs the PyTorch model in fp32 or bf16, not with '
                             f'{refused}')
        if str(args.device).startswith('cpu') and not compiler_available():
            raise InputError('--compile on: torch.compile needs a C++ compiler on CPUs (g++ '
                             'or clang++ on PATH, or CXX); none was found; use --compile off')
        print_log(f'torch.compile: on (--compile on, {precision}); the first batch of each '
                  'size compiles', logger='current')
        return True
    if refused:
        compile, why = False, f'{refused} runs uncompiled'
    elif args.random_weights:
        compile, why = False, '--random-weights is a smoke run'
    else:
        compile, why = choose_compile(precision, args.device, images)
    print_log(f"torch.compile 'auto' -> {'on' if compile else 'off'}: {why}",
              logger='current')
    return compile


def build_pipeline(args, images: Optional[int] = 0) -> TopdownPipeline:
    """The demo's pipeline; ``images``: how many images the job holds (None: a video),
    for ``--compile auto``."""
    from mmpose.apis import init_model

    max_persons = args.max_persons
    if args.random_weights:
        max_persons = RANDOM_MAX_PERSONS if max_persons is None else max_persons
        print_log(f'WARNING: --random-weights: {RANDOM_BANNER.lower()}; the detector keeps '
                  f'its {max_persons} best boxes per frame (--max-persons), without flip '
                  'test', logger='current', level=30)
        torch.manual_seed(0)  # the same random networks, so the same boxes, every run
    pose_ckpt = None if args.random_weights else args.pose_checkpoint
    pose = load_model('pose', init_model, args.pose_config, pose_ckpt, args.device)
    select_dataset(pose, args.dataset)
    pose.test_cfg['flip_test'] = pose.test_cfg.get('flip_test', False) and not (
        args.no_flip or args.random_weights)  # a smoke run: half the pose work
    fold_batchnorm(pose)  # inference only: same heatmaps, fewer operations
    compile = False  # the pose model's and the detector's
    if args.backend == 'onnxruntime' and args.onnx_file:
        check_onnx_graph(pose, args.onnx_file)
    if args.backend == 'onnxruntime':
        decide_compile(args, 'fp32', images)  # refuses --compile on
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
            precision = resolve_precision(pose, precision, **options)
            compile = decide_compile(args, precision, images)
            set_inference_precision(pose, precision, compile, **options)
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
        # the detector's convolutions in the pose model's precision where it is bf16/fp16
        set_detector_precision(detector, inference_precision(pose), compile)
    return TopdownPipeline(pose, detector, classes or (0, ), args.bbox_thr, args.nms_thr,
                           args.kpt_thr, args.draw_heatmap, attention, args.random_weights,
                           max_persons)


def check_onnx_graph(pose, onnx_file: str):
    """Refuse, at start, an ``--onnx-file`` that onnxruntime cannot load or whose
    feature maps for a (1, 3, H, W) input differ from the pose backbone's."""
    from vitpose_plugin.deploy.onnx import onnxruntime_session
    if not osp.isfile(onnx_file):
        return  # the backend reports the missing file
    try:
        run = onnxruntime_session(onnx_file)
    except Exception as e:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph ...
        raise InputError(f'--onnx-file {onnx_file}: onnxruntime cannot load it: '
                         f'{str(e)[:300]}') from e
    if run.output_names == ['heatmaps']:
        return  # a whole-network graph: the backend names it
    w, h = pose.cfg.codec['input_size']
    x = torch.zeros(1, 3, h, w, device=next(pose.parameters()).device)
    with torch.no_grad():
        want = pose.backbone(x)
    want = [tuple(t.shape) for t in (want if isinstance(want, (tuple, list)) else [want])]
    try:
        got = [tuple(t.shape) for t in run(x)]
    except Exception as e:
        raise InputError(f'--onnx-file {onnx_file}: the graph does not take this pose '
                         f"model's input (1, 3, {h}, {w}): {str(e)[:300]}") from e
    if got != want:
        raise InputError(f'--onnx-file {onnx_file}: its feature maps {got} for a (1, 3, '
                         f'{h}, {w}) input are not those of this pose backbone {want}; was '
                         'it exported from another config?')


class Runner:
    """Runs the pipeline over the inputs and writes pictures, videos and JSON."""

    def __init__(self, pipeline: TopdownPipeline, args, plan, bboxes=None):
        self.pipeline, self.args, self.plan, self.bboxes = pipeline, args, plan, bboxes
        self.missing = []  # inputs / frames the --bboxes file has no entry for
        self.damaged = []  # inputs processed as far as they decode

    def boxes(self, img, name: str, frame=None):
        if self.bboxes is None:
            return self.pipeline.detect(img)
        entry = self.bboxes.get(name)
        if frame is not None and isinstance(entry, dict):
            entry = entry.get(frame)
        if entry is None or isinstance(entry, dict):
            self.missing.append(name if frame is None else f'{name} frame {frame}')
            return np.zeros((0, 5), np.float32)
        where = f'--bboxes {self.args.bboxes}: {name!r}' + ('' if frame is None else
                                                           f' frame {frame}')
        check_box_extent(entry, img, where)
        return entry

    @property
    def mmpose_layout(self) -> bool:
        return self.args.json_format == 'mmpose'

    def _header(self, path, img, **video):
        if self.mmpose_layout:
            return dict(meta_info=jsonable(self.pipeline.pose.dataset_meta))
        return dict({'input': osp.basename(path), 'width': int(img.shape[1]),
                     'height': int(img.shape[0]),
                     'random_weights': bool(self.args.random_weights),
                     'keypoint_names': self.pipeline.keypoint_names}, **video)

    def _persons(self, boxes, sample, ids=None):
        if sample is None:
            return []
        if self.mmpose_layout:
            return mmpose_instances(boxes, sample, ids)
        return self.pipeline.persons(boxes, sample, ids)

    def image(self, path):
        img, damaged = read_image(path, self.args.max_pixels)
        if damaged:
            self.damaged.append(f'{path}: {damaged}')
            tqdm.write(f'warning: {path}: {damaged}; processing what decodes')
        boxes = self.boxes(img, osp.basename(path))
        sample, maps = self.pipeline.estimate(img, boxes)
        persons = self._persons(boxes, sample)
        pic, json_path = self.plan[path]
        ok, encoded = cv2.imencode(Path(pic).suffix, self.pipeline.draw(img, boxes, sample, maps))
        if not ok:
            raise InputError(f'{pic}: OpenCV cannot encode this picture')
        meta = to_json(dict(self._header(path, img), **{
            'instance_info' if self.mmpose_layout else 'persons': persons}))
        with signals_deferred():  # the picture and its JSON: both, or neither
            write_atomic(pic, encoded.tobytes())
            write_atomic(json_path, meta)
        return len(persons)

    def video(self, path):
        if not osp.isfile(path):
            raise InputError(f'{path}: no such file')
        video = mmcv.VideoReader(path)
        if not video.opened:
            raise InputError(f'{path}: cannot open the video')
        try:
            check_pixels(path, video.width, video.height, self.args.max_pixels)
            return self._video_frames(path, video)
        finally:
            video.vcap.release()

    def _video_frames(self, path, video):
        fps = video.fps if video.fps and math.isfinite(video.fps) else 25.0
        pose_meta = self.pipeline.pose.dataset_meta
        tracker = PoseTracker(self.args.track_method, sigmas=pose_meta.get('sigmas'),
                              smooth_fps=fps if self.args.smooth else None)
        name = osp.basename(path)
        out, error = None, 'stopped'
        try:
            for img in tqdm(video, total=video.frame_cnt or None, desc=name, unit='frame',
                            leave=False):
                if out is None:
                    out = VideoOutput(*self.plan[path], fps,
                                      self._header(path, img, fps=fps), self.mmpose_layout)
                t = len(out.frames)
                boxes = self.boxes(img, name, t)
                sample, maps = self.pipeline.estimate(img, boxes)
                ids = None
                if sample is not None:
                    ids = tracker.update(boxes, sample.pred_instances.keypoints)
                persons = self._persons(boxes, sample, ids)
                out.add(self.pipeline.draw(img, boxes, sample, maps, ids),
                        dict(frame_id=t + 1, instances=persons) if self.mmpose_layout
                        else dict(frame=t, persons=persons))
            error = None
        except KeyboardInterrupt:
            error = 'interrupted (SIGINT)'
            raise
        except Terminated:
            error = 'interrupted (SIGTERM)'
            raise
        except Exception as e:
            error = f'{type(e).__name__}: {e}' if not isinstance(e, InputError) else str(e)
            raise
        finally:
            if out is not None:
                out.close(error)
                if error is not None and out.frames:
                    tqdm.write(f'{path}: stopped after {len(out.frames)} frame(s), which are '
                               f'kept in {out.video_path} and {out.json_path}')
        if out is None:
            raise InputError(f'{path}: the video has no readable frames')
        key = 'instances' if self.mmpose_layout else 'persons'
        return sum(len(fr[key]) for fr in out.frames)


def mmpose_instances(boxes: np.ndarray, sample, track_ids=None):
    """Persons in the layout of MMPose's demo (``--save-predictions``): its
    ``split_instances`` of the predictions, ``bbox`` as [[x1, y1, x2, y2]], with the
    boxes' scores (and track ids)."""
    from mmpose.structures import split_instances
    inst = sample.pred_instances.clone()
    inst.bboxes = np.asarray(boxes[:, :4], np.float32)
    inst.bbox_scores = np.asarray(boxes[:, 4], np.float32)
    out = jsonable(split_instances(inst))
    for i, person in enumerate(out):
        if track_ids is not None:
            person['track_id'] = int(track_ids[i])
    return out


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None):
    args = parse_args(argv)
    try:
        inputs = collect_inputs(args.input)
        single_video = len(inputs) == 1 and is_video(inputs[0]) and not osp.isdir(args.input)
        bboxes = load_bboxes(args.bboxes, inputs, single_video) if args.bboxes else None
        plan = plan_outputs(inputs, args.out_dir)
        try:
            os.makedirs(args.out_dir, exist_ok=True)
        except OSError as e:
            raise InputError(f'--out-dir {args.out_dir}: {e}') from e
        runner = Runner(build_pipeline(args, job_images(inputs)), args, plan, bboxes)
    except InputError as e:
        raise SystemExit(f'error: {e}')
    failed, stop = [], None
    in_main = threading.current_thread() is threading.main_thread()
    old_handlers, old_mask = {}, None
    if in_main:  # Ctrl-C and SIGTERM stop the demo whatever the process set before
        old_handlers = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                        signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate)}
        if hasattr(signal, 'pthread_sigmask'):
            old_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, set(old_handlers))
    try:
        with torch.no_grad():
            for path in tqdm(inputs, desc='topdown demo', unit='input',
                             disable=len(inputs) < 2):
                try:
                    n = (runner.video if is_video(path) else runner.image)(path)
                    tqdm.write(f'{path}: {n} person(s)')
                except InputError as e:
                    failed.append(str(e))
                    tqdm.write(f'error: {e}')
                except Exception as e:  # one input's failure never stops the others
                    failed.append(f'{path}: {type(e).__name__}: {e}')
                    tqdm.write(f'error: {failed[-1]}')
    except (KeyboardInterrupt, Terminated) as e:
        stop = 'SIGTERM' if isinstance(e, Terminated) else 'SIGINT'
    finally:
        if in_main:
            for signum, handler in old_handlers.items():
                if handler is not None:  # None: set outside Python, left as it is
                    signal.signal(signum, handler)
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    if runner.missing:
        print(f'warning: --bboxes {args.bboxes} has no boxes for {len(runner.missing)} '
              f'input(s) / frame(s), which get no persons: {", ".join(runner.missing[:20])}'
              + (' ...' if len(runner.missing) > 20 else ''), file=sys.stderr)
    if runner.damaged:
        print(f'{len(runner.damaged)} corrupt input(s), processed as far as they decode:\n'
              + '\n'.join(f'  {m}' for m in runner.damaged), file=sys.stderr)
    done = len(inputs) - len(failed)
    if stop:
        print(f'{stop}: stopped; finished outputs are in {args.out_dir}', file=sys.stderr)
        raise SystemExit(130 if stop == 'SIGINT' else 143)
    print(f'done: {done}/{len(inputs)} input(s) processed, results in {args.out_dir}')
    if failed:
        print(f'{len(failed)} failed:\n' + '\n'.join(f'  {m}' for m in failed), file=sys.stderr)
        raise SystemExit(1)


if __name__ == '__main__':
    main()
