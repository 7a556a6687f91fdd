"""How far int8 and bf16 ViTPose's keypoints are from fp32's, on a trained model and
real people.

The int8 backbone (``vitpose_plugin.deploy.int8``) is calibrated on ``--calibration``
(default: the coco-mini-train people); bf16 is ``set_inference_precision(model,
'bf16')`` (weights in bf16), ``bf16+compile`` the same run through ``torch.compile``
(``compile=True``). Each is compared with fp32 on people int8 was not
calibrated on: the shared COCO val images (ground-truth boxes) and OCHuman's, with the
config's flip test. Reports, per precision and set: mean and minimum OKS of its
keypoints against the fp32 ones (the dataset's sigmas, the person's area), the worst
and mean keypoint distance in pixels at the 256x192 input scale, and COCO AP of fp32 and
of it on the shared COCO images. Prints a table and writes JSON.

    python -m benchmarks.int8_agreement CONFIG CHECKPOINT [--precisions int8 bf16
        bf16+compile]
        [--method percentile]
"""
import argparse
import json
import os
import os.path as osp

import numpy as np
import torch

from benchmarks.measure import cpu_description, cpu_line
from vitpose_plugin.deploy.int8 import DEFAULT_CALIBRATION

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('VITPOSE_SHARED_DATA', osp.join(REPO, '..', 'shared', 'data'))
SETS = {'coco val (shared)': 'coco/test_coco.json', 'ochuman': 'ochuman/test_ochuman.json'}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--precisions', nargs='+', default=['int8', 'bf16'],
                   choices=['int8', 'bf16', 'bf16+compile', 'fp16'])
    p.add_argument('--calibration', default=DEFAULT_CALIBRATION)
    p.add_argument('--method', default='percentile', choices=['percentile', 'minmax'])
    p.add_argument('--num', type=int, default=256, help='calibration crops')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'int8_agreement.json'))
    return p.parse_args()


def predict(model, coco, root):
    """{annotation id: (keypoints (K, 2), crop scale px per input px)} with GT boxes."""
    from mmpose.apis import inference_topdown
    out = {}
    for img in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']
                and a.get('num_keypoints', 0) > 0]
        if not anns:
            continue
        boxes = np.array([a['bbox'] for a in anns], np.float32)
        results = inference_topdown(model, osp.join(root, img['file_name']), boxes,
                                    bbox_format='xywh')
        for a, r in zip(anns, results):
            x, y, w, h = a['bbox']
            scale = max(w * 1.25 / 192, h * 1.25 / 256)  # image px per input px
            out[a['id']] = (r.pred_instances.keypoints[0], scale, a['area'], r)
    return out


def coco_ap(predictions, coco, ann_file):
    """COCO keypoint AP (xtcocotools) of ``predict``'s output, with ground-truth boxes."""
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval
    anns = {a['id']: a for a in coco['annotations']}
    results = []
    for k, (kpts, _, _, r) in predictions.items():
        scores = r.pred_instances.keypoint_scores[0]
        results.append(dict(image_id=anns[k]['image_id'], category_id=1, score=float(
            scores.mean()), keypoints=np.concatenate([kpts, scores[:, None]], 1).ravel().tolist()))
    gt = COCO(ann_file)
    evaluator = COCOeval(gt, gt.loadRes(results), 'keypoints', use_area=True)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])


def main():
    args = parse_args()
    from mmpose.apis import init_model

    from vitpose_plugin.deploy import fold_batchnorm, set_inference_precision
    torch.set_grad_enabled(False)
    model = init_model(args.config, args.checkpoint, device='cpu')
    fold_batchnorm(model)
    sigmas = np.asarray(model.dataset_meta['sigmas'])
    print(f'cpu: {cpu_line()}')
    fp32, data = {}, {}
    for name, rel in SETS.items():
        path = osp.join(SHARED, rel)
        with open(path) as f:
            data[name] = (json.load(f), osp.dirname(path))
        fp32[name] = predict(model, *data[name])
    val = 'coco val (shared)'
    ann = osp.join(SHARED, SETS[val])
    ap32 = coco_ap(fp32[val], data[val][0], ann)
    rows, aps = {}, {}
    for precision in args.precisions:
        options = dict(calibration=args.calibration, num=args.num, method=args.method) \
            if precision == 'int8' else {}
        set_inference_precision(model, precision.split('+')[0], precision.endswith('+compile'),
                                **options)
        low = {name: predict(model, *data[name]) for name in SETS}
        set_inference_precision(model, 'fp32')
        aps[precision] = coco_ap(low[val], data[val][0], ann)
        for name in SETS:
            oks, dist = [], []
            for k, (k32, scale, area, _) in fp32[name].items():
                d2 = ((k32 - low[name][k][0])**2).sum(-1)
                oks.append(float(np.exp(-d2 / (2 * max(area, 1) * (2 * sigmas)**2)).mean()))
                dist.append(np.sqrt(d2) / scale)
            dist = np.concatenate(dist)
            rows[f'{precision} {name}'] = dict(
                precision=precision, set=name, persons=len(oks), mean_oks=float(np.mean(oks)),
                min_oks=float(np.min(oks)), max_px=float(dist.max()), mean_px=float(dist.mean()))
    print(f'\nvs fp32, {args.checkpoint} (int8: {args.method}, {args.num} crops of '
          f'{args.calibration})\n\n| precision | set | persons | mean OKS | min OKS | '
          'worst keypoint px | mean px |\n|---|---|---|---|---|---|---|')
    for r in rows.values():
        print(f"| {r['precision']} | {r['set']} | {r['persons']} | {r['mean_oks']:.4f} | "
              f"{r['min_oks']:.4f} | {r['max_px']:.2f} | {r['mean_px']:.3f} |")
    for precision, ap in aps.items():
        print(f'COCO AP on the shared COCO images (ground-truth boxes): fp32 {ap32:.4f}, '
              f'{precision} {ap:.4f} ({100 * (ap - ap32):+.2f} points)')
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(cpu=cpu_description(), checkpoint=args.checkpoint, method=args.method,
                       rows=rows, ap_fp32=ap32, ap=aps), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
