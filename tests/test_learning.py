"""Training really learns, evaluation is wired right, and resuming loses nothing."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpose.registry import DATASETS, METRICS, MODELS

from helpers import (
    CONFIGS,
    resume_after_sigkill_matches,
    shared_coco_options,
    tiny_config,
)

SANITY = CONFIGS / 'vitpose' / 'sanity' / 'td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py'
@pytest.mark.slow
def test_tiny_vitpose_overfits_shared_coco(trained_sanity, coco_dir, tmp_path):
    """150 iterations on 12 people through ``mim train``; then AP on the same images
    (flip test on), and again from the saved checkpoint as ``mim test`` tests it (MMPose's
    tools/test.py: ``load_from``, then ``Runner.test``), in this process; the ``mim test``
    command line itself: test_runner.py::test_mim_train_and_test_cli."""
    work, ap = trained_sanity
    assert ap >= 0.9
    cfg = Config.fromfile(str(SANITY))
    cfg.merge_from_dict(dict(o.split('=', 1) for o in shared_coco_options(coco_dir)))
    cfg.work_dir, cfg.load_from = str(tmp_path / 'test'), str(work / 'iter_150.pth')
    cfg.visualizer.name = 'visualizer_sanity_test'
    assert Runner.from_cfg(cfg).test()['coco/AP'] >= 0.9
    # bf16 (autocast): 8 mantissa bits on every activation, sub-pixel at the input scale
    check_precision_agrees_with_fp32(work / 'iter_150.pth', coco_dir, work, 'bf16',
                                     max_mean_px=0.5, min_oks=0.99)
    # int8 (256 levels per activation tensor, calibrated on these people): the accuracy
    # int8 is shipped for, mean OKS >= 0.98 against fp32
    check_precision_agrees_with_fp32(work / 'iter_150.pth', coco_dir, work, 'int8',
                                     max_mean_px=1.0, min_mean_oks=0.98,
                                     calibration=str(coco_dir / 'test_coco.json'))


def check_precision_agrees_with_fp32(ckpt, coco_dir, work, precision, max_mean_px,
                                     min_oks=0.0, min_mean_oks=0.0, **options):
    """``precision`` inference of the trained model vs fp32 on the shared images: mean
    keypoint difference at the 256x192 input scale, and the persons' OKS."""
    from mmpose.apis import inference_topdown, init_model
    from xtcocotools.coco import COCO

    from vitpose_plugin.deploy import set_inference_precision
    config = next(work.glob('*.py'))
    model = init_model(str(config), str(ckpt), device='cpu')
    coco = COCO(str(coco_dir / 'test_coco.json'))
    sigmas = model.dataset_meta['sigmas']
    people = []  # (image path, annotations with keypoints)
    for img_id in coco.getImgIds():
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id)) if a['num_keypoints']]
        if anns:
            people.append((str(coco_dir / coco.loadImgs(img_id)[0]['file_name']), anns))
    runs = {}
    for p in ('fp32', precision):  # one switch each: int8 calibrates once
        set_inference_precision(model, p, **(options if p == precision else {}))
        with torch.no_grad():
            runs[p] = [inference_topdown(model, path, np.array([a['bbox'] for a in anns],
                                                               np.float32), bbox_format='xywh')
                       for path, anns in people]
    diffs, oks = [], []
    for (_, anns), res32, res in zip(people, runs['fp32'], runs[precision]):
        for a, r32, r16 in zip(anns, res32, res):
            k32, k16 = r32.pred_instances.keypoints[0], r16.pred_instances.keypoints[0]
            scale = r32.pred_instances.bboxes[0]  # xyxy of the box, padded 1.25 by the crop
            crop = max((scale[2] - scale[0]) * 1.25 / 192, (scale[3] - scale[1]) * 1.25 / 256)
            d2 = ((k32 - k16)**2).sum(-1)
            diffs.append(np.sqrt(d2).mean() / crop)
            oks.append(np.exp(-d2 / (2 * a['area'] * (2 * sigmas)**2)).mean())
    print(f'{precision} vs fp32: mean {np.mean(diffs):.3f} px at input scale, OKS mean '
          f'{np.mean(oks):.4f} min {min(oks):.4f}')
    assert np.mean(diffs) <= max_mean_px and min(oks) >= min_oks and np.mean(oks) >= min_mean_oks


def test_ground_truth_through_codec_gives_ap_1(coco_dir):
    """GT keypoints -> UDP heatmaps -> the head's decoding -> image space -> CocoMetric."""
    init_default_scope('mmpose')
    cfg = tiny_config('td-hm_vitpose-base_8xb64-210e_coco-256x192.py')
    model = MODELS.build(cfg.model).eval()
    dataset = DATASETS.build(dict(
        type='CocoDataset', data_root=str(coco_dir), ann_file='test_coco.json',
        data_prefix=dict(img=''), data_mode='topdown', test_mode=True,
        pipeline=[dict(type='LoadImage'), dict(type='GetBBoxCenterScale'),
                  dict(type='TopdownAffine', input_size=cfg.codec.input_size, use_udp=True),
                  dict(type='GenerateTarget', encoder=cfg.codec),
                  dict(type='PackPoseInputs')]))
    metric = METRICS.build(dict(type='CocoMetric', ann_file=str(coco_dir / 'test_coco.json')))
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        heatmaps = sample.gt_fields.heatmaps[None]
        preds = model.head.decode(heatmaps)
        # Unlabelled keypoints have all-zero target maps, which decode to NaN (a network
        # never outputs exact zeros); COCO's OKS ignores them, so any finite value does.
        for p in preds:
            p.keypoints = np.nan_to_num(p.keypoints)
        sample = model.add_pred_to_datasample(preds, None, [sample])[0]
        metric.process([], [sample.to_dict()])
    result = metric.evaluate(size=len(dataset))
    assert len(dataset) >= 12
    assert result['coco/AP'] == pytest.approx(1.0) and result['coco/AR'] == pytest.approx(1.0)


def _resume_config(coco_dir, tmp_path):
    cfg = Config.fromfile(str(SANITY))
    cfg.model.backbone.arch = dict(embed_dims=32, num_layers=2, num_heads=2)
    cfg.model.head.in_channels = 32
    cfg.model.head.deconv_out_channels = (16, 16)
    cfg.optim_wrapper.paramwise_cfg.num_layers = 2
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 40
    cfg.param_scheduler[1].end = 40
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=4, by_epoch=False)
    cfg.randomness = dict(seed=7, deterministic=True)
    # augmentation on, so that the data pipeline's random state matters too
    cfg.train_dataloader.dataset.pipeline.insert(2, dict(type='RandomFlip', direction='horizontal'))
    cfg.train_dataloader.dataset.pipeline.insert(3, dict(type='RandomBBoxTransform'))
    cfg.train_dataloader.batch_size = 4
    path = tmp_path / 'resume_cfg.py'
    cfg.dump(str(path))
    return path


def test_resume_after_sigkill_matches_uninterrupted_run(coco_dir, tmp_path):
    resume_after_sigkill_matches(_resume_config(coco_dir, tmp_path), coco_dir, tmp_path,
                                 kill_at=8, last=40)
