"""End-to-end throughput of the top-down demo, stage by stage, beside MMPoseInferencer.

For each configuration (detector preset x pose settings) this runs the demo's pipeline
(``vitpose_plugin.apis.TopdownPipeline``: detector, ViTPose-B with BatchNorm folded, all
persons of a frame in one batch) over the COCO images of ``../shared/data/coco`` and the
frames of ``../shared/data/images/demo.mp4`` (tracked), and times each stage: read,
detect, pose (crop, network with or without flip test, decoding), draw, write (picture
or video frame, and JSON). Then MMPoseInferencer runs the same detector and pose weights
on the same images (reading, detecting, estimating, drawing and writing too), image by
image next to the demo's pipeline, so that slow drifts of the machine hit both alike.

Without checkpoints the weights are random; each detector's person logit is then set high
and its detections are capped at ``--persons`` per image (3.5 is the shared images'
average), so that every configuration and MMPoseInferencer estimate the same number of
people from the same boxes. Timing does not depend on the weights' values. Prints a
table with the CPU and writes JSON.

    python -m benchmarks.demo_throughput [--repeat 3] [--persons 4]
        [--det-checkpoint P] [--pose-checkpoint P]
"""
import argparse
import json
import os
import os.path as osp
import tempfile
import time
from collections import defaultdict

import cv2
import mmcv
import torch

from benchmarks.measure import cpu_description, cpu_line
from vitpose_plugin.apis.detectors import DETECTOR_PRESETS, set_detector_precision
from vitpose_plugin.apis.topdown_pipeline import TopdownPipeline, build_detector
from vitpose_plugin.apis.tracking import PoseTracker
from vitpose_plugin.deploy import (
    fold_batchnorm,
    inference_precision,
    set_inference_precision,
    use_onnxruntime,
)
from vitpose_plugin.deploy.auto import choose_compile
from vitpose_plugin.deploy.precision import resolve_precision
from vitpose_plugin.deploy.torch_compile import compiled_sizes

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STAGES = ('read', 'detect', 'pose', 'draw', 'write')
POSE_CONFIG = osp.join(REPO, 'configs', 'vitpose', 'coco',
                       'td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
# (detector preset, flip test, pose backend or precision); the first is the demo's
# default for a few images (precision 'auto'), the second the fp32 default it is compared
# with, the last the demo's default for a video or many images (compiled where 'auto'
# gives bf16: its first pass, untimed, compiles)
SETTINGS = [('rtmdet-m', True, 'auto'), ('rtmdet-m', True, 'pytorch'),
            ('rtmdet-m', False, 'pytorch'),
            ('rtmdet-nano', True, 'pytorch'), ('rtmdet-nano', False, 'pytorch'),
            ('rtmdet-nano', False, 'onnxruntime'), ('rtmdet-nano', False, 'int8'),
            ('faster-rcnn', True, 'pytorch'), ('rtmdet-m', True, 'auto+compile')]
BASELINE_IMAGES_PER_S = 0.14  # Faster R-CNN + ViTPose-B with flip, before the presets


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    shared = os.environ.get('VITPOSE_SHARED_DATA', osp.join(REPO, '..', 'shared', 'data'))
    p.add_argument('--data', default=osp.join(shared, 'coco'), help='COCO images folder')
    p.add_argument('--video', default=osp.join(shared, 'images', 'demo.mp4'))
    p.add_argument('--pose-config', default=POSE_CONFIG)
    p.add_argument('--pose-checkpoint')
    p.add_argument('--det-checkpoint', help='real weights of every preset (a folder of '
                   'files named as the presets\' URLs); without: random weights')
    p.add_argument('--persons', type=int, default=4, help='persons per image (random weights)')
    p.add_argument('--settings', nargs='+', type=int, help='indices of SETTINGS to run')
    p.add_argument('--repeat', type=int, default=3, help='passes (the first warms up)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'demo_throughput.json'))
    return p.parse_args()


def force_persons(detector, n):
    """Random weights: make every detection a confident person and keep n per image.
    RTMDet's boxes become small, non-overlapping boxes around their anchors (so NMS keeps
    them); the pose cost does not depend on a box's size."""
    head = getattr(detector, 'bbox_head', None)
    with torch.no_grad():
        if hasattr(head, 'rtm_cls'):  # RTMDet
            for conv in head.rtm_cls:
                conv.bias[0] = 6.0
            for conv in head.rtm_reg:
                conv.weight.zero_()
                conv.bias.fill_(0.4)
            head.test_cfg.max_per_img = n
        else:  # Faster R-CNN: the ROI head's person logit
            detector.roi_head.bbox_head.fc_cls.bias[0] = 10.0
            detector.roi_head.test_cfg.max_per_img = n


def build_pose(args, flip, backend):
    from mmpose.apis import init_model
    pose = init_model(args.pose_config, args.pose_checkpoint, device=args.device)
    pose.test_cfg['flip_test'] = flip
    fold_batchnorm(pose)
    if backend == 'onnxruntime':
        use_onnxruntime(pose)
    elif backend in ('int8', 'auto', 'bf16', 'auto+compile'):
        # int8: calibrated on the shared COCO people; compiled as the demo's --compile auto
        calibration = osp.join(args.data, 'test_coco.json')
        precision = resolve_precision(pose, backend.split('+')[0], calibration=calibration)
        compile = backend.endswith('+compile') and choose_compile(precision, args.device)[0]
        set_inference_precision(pose, precision, compile, calibration=calibration)
    return pose


def run_ours(pipeline, images, video, repeat, out_dir, beside=None):
    """{'images' / 'video': ({stage: seconds per image}, persons per image)}. ``beside``
    (an :class:`InferencerTimer`) runs on every image next to ours, before it on odd
    passes and after it on even ones, so that both see the same machine state."""
    result = {}
    for kind in ('images', 'video'):
        times, persons, count = defaultdict(float), 0, 0
        for rep in range(repeat):
            frames = []
            if kind == 'images':
                for path in images:
                    if beside is not None and rep % 2:
                        beside(path, rep)
                    t = [time.perf_counter()]
                    img = cv2.imread(path)
                    t.append(time.perf_counter())
                    boxes = pipeline.detect(img)
                    t.append(time.perf_counter())
                    sample, _ = pipeline.estimate(img, boxes)
                    t.append(time.perf_counter())
                    vis = pipeline.draw(img, boxes, sample)
                    t.append(time.perf_counter())
                    cv2.imwrite(osp.join(out_dir, osp.basename(path)), vis)
                    with open(osp.join(out_dir, osp.basename(path) + '.json'), 'w') as f:
                        json.dump(pipeline.persons(boxes, sample) if sample else [], f)
                    t.append(time.perf_counter())
                    frames.append((t, len(boxes)))
                    if beside is not None and not rep % 2:
                        beside(path, rep)
            else:
                reader = mmcv.VideoReader(video)
                tracker = PoseTracker('iou')
                writer = cv2.VideoWriter(osp.join(out_dir, 'video.mp4'),
                                         cv2.VideoWriter_fourcc(*'mp4v'), reader.fps,
                                         (reader.width, reader.height))
                records, it = [], iter(reader)
                while True:
                    t = [time.perf_counter()]
                    img = next(it, None)
                    if img is None:
                        break
                    t.append(time.perf_counter())
                    boxes = pipeline.detect(img)
                    t.append(time.perf_counter())
                    sample, _ = pipeline.estimate(img, boxes)
                    ids = tracker.update(boxes, sample.pred_instances.keypoints) \
                        if sample else None
                    t.append(time.perf_counter())
                    vis = pipeline.draw(img, boxes, sample, None, ids)
                    t.append(time.perf_counter())
                    writer.write(vis)
                    records.append(pipeline.persons(boxes, sample, ids) if sample else [])
                    t.append(time.perf_counter())
                    frames.append((t, len(boxes)))
                writer.release()
                with open(osp.join(out_dir, 'video.json'), 'w') as f:
                    json.dump(records, f)
            if rep:  # the first pass warms up
                for t, n in frames:
                    for stage, a, b in zip(STAGES, t, t[1:]):
                        times[stage] += b - a
                    persons += n
                    count += 1
        result[kind] = ({s: v / count for s, v in times.items()}, persons / count)
    return result


def build_inferencer(args, detector_preset, flip):
    """MMPoseInferencer with the preset's detector (persons forced as ours) and the pose
    config; its detector model is shared with our pipeline, so both see the same boxes."""
    from mmpose.apis import MMPoseInferencer
    inferencer = MMPoseInferencer(
        pose2d=args.pose_config, pose2d_weights=args.pose_checkpoint,
        det_model=DETECTOR_PRESETS[detector_preset]['config'], det_weights=None,
        det_cat_ids=[0], device=args.device)
    pose = inferencer.inferencer.model
    pose.test_cfg['flip_test'] = flip
    fold_batchnorm(pose)
    return inferencer


class InferencerTimer:
    """Times MMPoseInferencer image by image (reading, detecting, estimating, drawing and
    writing included; the first pass warms up) and counts the persons it estimates."""

    def __init__(self, inferencer, out_dir):
        self.inferencer, self.out_dir = inferencer, out_dir
        self.elapsed, self.count, self.persons = 0.0, 0, 0

    def __call__(self, path, rep):
        t0 = time.perf_counter()
        for result in self.inferencer(path, vis_out_dir=self.out_dir, pred_out_dir=self.out_dir,
                                      show=False):
            persons = len(result['predictions'][0])
        if rep:
            self.elapsed += time.perf_counter() - t0
            self.count += 1
            self.persons += persons


def main():
    args = parse_args()
    images = sorted(osp.join(args.data, f) for f in os.listdir(args.data)
                    if f.lower().endswith(('.jpg', '.png')))
    if not images or not osp.isfile(args.video):
        raise SystemExit(f'no images in {args.data} or no video {args.video} (pass --data / '
                         '--video or set VITPOSE_SHARED_DATA)')
    random = args.pose_checkpoint is None
    args.det_weights = None
    print(f'{args.device}: {cpu_line()}\n{len(images)} images + {args.video} '
          f'({mmcv.VideoReader(args.video).frame_cnt} frames), {args.repeat - 1} timed passes'
          f'{", random weights, " + str(args.persons) + " persons per image" if random else ""}')
    rows = []
    tmp = tempfile.mkdtemp()
    settings = [SETTINGS[i] for i in args.settings] if args.settings else SETTINGS
    compare = {('rtmdet-m', True, 'auto'), ('rtmdet-m', True, 'pytorch'),
               ('rtmdet-m', True, 'auto+compile'),
               ('rtmdet-nano', False, 'pytorch')}
    with torch.no_grad():
        for preset, flip, backend in settings:
            inferencer = None
            if (preset, flip, backend) in compare and random:
                from mmpose.utils import adapt_mmdet_pipeline
                inferencer = build_inferencer(args, preset, flip)
                detector = inferencer.inferencer.detector.model
                detector.cfg = adapt_mmdet_pipeline(detector.cfg)
            else:
                detector = build_detector(preset, random_weights=random, device=args.device)
            if random:
                force_persons(detector, args.persons)
            pose = build_pose(args, flip, backend)
            if backend.startswith('auto'):  # the detector's convolutions in the pose's precision
                set_detector_precision(detector, inference_precision(pose),
                                       bool(compiled_sizes(pose)))  # compiled as the pose
                print(f'auto: pose and detector in {inference_precision(pose)}')
            pipeline = TopdownPipeline(pose, detector)
            beside = None if inferencer is None else InferencerTimer(inferencer, tmp)
            result = run_ours(pipeline, images, args.video, args.repeat, tmp, beside)
            row = dict(detector=preset, flip=flip, pose_backend=backend)
            for kind, (stage, persons) in result.items():
                total = sum(stage.values())
                row[kind] = dict(images_per_s=1 / total, persons_per_image=persons,
                                 ms_per_image={s: 1e3 * stage[s] for s in STAGES},
                                 share={s: stage[s] / total for s in STAGES})
            row['x_baseline'] = row['images']['images_per_s'] / BASELINE_IMAGES_PER_S
            if beside is not None:
                row['mmpose_inferencer_images_per_s'] = beside.count / beside.elapsed
                row['mmpose_inferencer_persons_per_image'] = beside.persons / beside.count
            rows.append(row)
            im, vid = row['images'], row['video']
            print(f"{preset:12s} flip={str(flip):5s} {backend:11s} images {im['images_per_s']:.2f}"
                  f"/s (x{row['x_baseline']:.1f}, {im['persons_per_image']:.1f} persons), video "
                  f"{vid['images_per_s']:.2f} frames/s", flush=True)
            if beside is not None:
                print(f"{'':12s} MMPoseInferencer, same models, interleaved: images "
                      f"{row['mmpose_inferencer_images_per_s']:.2f}/s "
                      f"({row['mmpose_inferencer_persons_per_image']:.1f} persons)", flush=True)
    print('\n| detector | flip | pose | images/s | × 0.14 | MMPoseInferencer img/s | read | '
          'detect | pose | draw | write | video frames/s |\n|' + '---|' * 12)
    for r in rows:
        inf, im = r.get('mmpose_inferencer_images_per_s'), r['images']
        print(f"| {r['detector']} | {'yes' if r['flip'] else 'no'} | {r['pose_backend']} | "
              f"{im['images_per_s']:.2f} | {r['x_baseline']:.1f} | "
              f"{'' if inf is None else f'{inf:.2f}'} | " + ' | '.join(
                  f"{im['ms_per_image'][s]:.0f} ms ({im['share'][s]:.0%})" for s in STAGES)
              + f" | {r['video']['images_per_s']:.2f} |")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(cpu=cpu_description(), device=args.device, random_weights=random,
                       rows=rows), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
