"""End-to-end throughput of the top-down demo, stage by stage.

Runs the demo's own models and settings (``demo/topdown_demo.py``: MMDetection's Faster
R-CNN R50-FPN, ViTPose-B with BatchNorm folded) on the COCO images of ``../shared/data``
and times each stage per image: read, detect (detector forward + threshold + NMS), pose
(crop, network, decoding, for every person), draw, write. Without checkpoints the
weights are random (timing does not depend on them), and the persons come from the
images' ground-truth boxes so that the pose stage sees the real number of people; with
both ``--det-checkpoint`` and ``--pose-checkpoint`` the detector's boxes are used. Prints a table and writes JSON.

    python benchmarks/demo_throughput.py [--data ../shared/data/coco] [--repeat 3]
        [--det-checkpoint P] [--pose-config C] [--pose-checkpoint P] [--precision fp32]
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time
from collections import defaultdict

import cv2
import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'demo'))
import topdown_demo as demo  # noqa: E402

STAGES = ('read', 'detect', 'pose', 'draw', 'write')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    default_data = osp.join(os.environ.get('VITPOSE_SHARED_DATA',
                                           osp.join(REPO, '..', 'shared', 'data')), 'coco')
    p.add_argument('--data', default=default_data,
                   help='folder with test_coco.json and its images')
    p.add_argument('--det-config', default=demo.DEFAULT_DET_CONFIG)
    p.add_argument('--det-checkpoint', default=None)
    p.add_argument('--pose-config', default=demo.DEFAULT_POSE_CONFIG)
    p.add_argument('--pose-checkpoint', default=None)
    p.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    p.add_argument('--device', default='cpu')
    p.add_argument('--repeat', type=int, default=3, help='passes over the images (first is '
                   'a warm-up)')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'demo_throughput.json'))
    return p.parse_args()


def main():
    args = parse_args()
    ann_file = osp.join(args.data, 'test_coco.json')
    if not osp.isfile(ann_file):
        raise SystemExit(f'{ann_file}: not found (pass --data or set VITPOSE_SHARED_DATA)')
    coco = json.load(open(ann_file))
    gt_boxes = defaultdict(list)
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        gt_boxes[a['image_id']].append([x, y, x + w, y + h, 1.0])
    images = [(osp.join(args.data, im['file_name']), np.array(gt_boxes[im['id']], np.float32))
              for im in coco['images']]
    random = args.det_checkpoint is None or args.pose_checkpoint is None
    demo_args = demo.parse_args(
        ['unused', '--det-config', args.det_config, '--pose-config', args.pose_config,
         '--device', args.device, '--precision', args.precision]
        + (['--det-checkpoint', args.det_checkpoint] if args.det_checkpoint else [])
        + (['--pose-checkpoint', args.pose_checkpoint] if args.pose_checkpoint else [])
        + (['--random-weights'] if random else []))
    detector, pose, visualizer = demo.build_models(demo_args)
    from mmpose.apis import inference_topdown
    from mmpose.structures import merge_data_samples

    times = defaultdict(list)
    persons = 0
    tmp = tempfile.mkdtemp()
    with torch.no_grad():
        for rep in range(args.repeat):
            for path, gt in images:
                t = [time.perf_counter()]
                img = cv2.imread(path)
                t.append(time.perf_counter())
                dets = demo.detect_persons(detector, img, demo_args)
                boxes = gt if random else dets
                t.append(time.perf_counter())
                sample = merge_data_samples(inference_topdown(pose, img, boxes[:, :4]))
                t.append(time.perf_counter())
                visualizer.add_datasample('result', img[..., ::-1].copy(), data_sample=sample,
                                          draw_gt=False, draw_bbox=True, show=False)
                vis = visualizer.get_image()
                t.append(time.perf_counter())
                cv2.imwrite(osp.join(tmp, osp.basename(path)), vis[..., ::-1])
                t.append(time.perf_counter())
                if rep:  # the first pass warms up
                    for stage, a, b in zip(STAGES, t, t[1:]):
                        times[stage].append(b - a)
                    persons += len(boxes)
    n = len(times['read'])
    total = sum(sum(v) for v in times.values())
    rows = {s: dict(ms_per_image=1e3 * sum(times[s]) / n, share=sum(times[s]) / total)
            for s in STAGES}
    print(f"{len(images)} images x {args.repeat - 1} timed passes, {persons / n:.1f} persons "
          f"per image, {torch.get_num_threads()} threads, {args.device}, {args.precision}"
          f"{', random weights' if random else ''}\n")
    print('| stage | ms / image | share |\n|---|---|---|')
    for s in STAGES:
        print(f"| {s} | {rows[s]['ms_per_image']:.1f} | {rows[s]['share']:.0%} |")
    summary = dict(images_per_s=n / total, persons_per_s_pose=persons / sum(times['pose']),
                   persons_per_image=persons / n)
    print(f"\nend to end: {summary['images_per_s']:.2f} images/s; pose stage: "
          f"{summary['persons_per_s_pose']:.2f} persons/s")
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(stages=rows, **summary, device=args.device, precision=args.precision,
                       threads=torch.get_num_threads(), random_weights=random), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
