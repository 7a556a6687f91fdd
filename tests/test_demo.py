"""demo/topdown_demo.py end to end, with tiny locally saved checkpoints."""
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpose.apis import inference_topdown, init_model

from helpers import REPO, check_persons, run_demo
from vitpose_plugin.apis.detectors import COCO_ANIMALS, DETECTOR_PRESETS, detect, detector_classes
from vitpose_plugin.apis.topdown_pipeline import PALETTE, TopdownPipeline, build_detector
from vitpose_plugin.deploy import fold_batchnorm


def test_image(tmp_path, tiny_models, images):
    """Through the demo's command line (the other tests call its main() in process)."""
    run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path, '--draw-heatmap',
              '--precision', 'fp32'] + tiny_models, in_process=False)  # compared with fp32
    out = json.loads((tmp_path / 'sunglasses.jpg.json').read_text())
    assert out['input'] == 'sunglasses.jpg' and out['random_weights'] is False
    assert (out['width'], out['height']) == (256, 256)
    assert out['keypoint_names'][:3] == ['nose', 'left_eye', 'right_eye']
    assert 1 <= len(out['persons']) <= 3
    check_persons(out['persons'], out['keypoint_names'])
    vis = cv2.imread(str(tmp_path / 'sunglasses.jpg'))
    assert vis.shape == (256, 256, 3)
    # the JSON holds exactly what MMPose's inference_topdown gives for those boxes
    cfg = tiny_models[tiny_models.index('--pose-config') + 1]
    ckpt = tiny_models[tiny_models.index('--pose-checkpoint') + 1]
    model = init_model(cfg, ckpt, device='cpu')
    fold_batchnorm(model)  # as the demo does
    check_against_inference_topdown(out['persons'], model, images / 'sunglasses.jpg')


def check_against_inference_topdown(persons, model, image):
    """The JSON's keypoints (2 decimals) are MMPose's for the same boxes."""
    boxes = np.array([p['bbox'] for p in persons], np.float32)
    with torch.no_grad():
        want = inference_topdown(model, str(image), boxes)
    for p, w in zip(persons, want):
        np.testing.assert_allclose(p['keypoints'], w.pred_instances.keypoints[0], atol=0.006)
        np.testing.assert_allclose(p['keypoint_scores'], w.pred_instances.keypoint_scores[0],
                                   atol=1e-3)


def test_compiled_pose_model_gives_the_same_keypoints(tmp_path, tiny_models, images):
    """--compile on (fp32 here, so that it can be compared on every CPU): the persons of
    the uncompiled model; fp32 kernels of inductor and eager differ by rounding only."""
    boxes = [[10, 10, 120, 250, 0.9], [100, 20, 240, 250, 0.8], [50, 5, 200, 200, 0.7],
             [0, 0, 255, 255, 0.6], [60, 60, 180, 180, 0.5]]  # 5 persons: chunks of 4 and 1
    (tmp_path / 'boxes.json').write_text(json.dumps({'sunglasses.jpg': boxes}))
    res = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path, '--precision', 'fp32',
                    '--compile', 'on', '--bboxes', tmp_path / 'boxes.json']
                   + _pose_only(tiny_models))  # the compiled detector: test_deploy.py
    out = json.loads((tmp_path / 'sunglasses.jpg.json').read_text())
    assert len(out['persons']) == 5
    cfg = tiny_models[tiny_models.index('--pose-config') + 1]
    ckpt = tiny_models[tiny_models.index('--pose-checkpoint') + 1]
    model = init_model(cfg, ckpt, device='cpu')
    fold_batchnorm(model)
    boxes = np.array([p['bbox'] for p in out['persons']], np.float32)
    with torch.no_grad():
        want = inference_topdown(model, str(images / 'sunglasses.jpg'), boxes)
    got_kpts = np.array([p['keypoints'] for p in out['persons']])
    want_kpts = np.stack([w.pred_instances.keypoints[0] for w in want])
    np.testing.assert_allclose([p['keypoint_scores'] for p in out['persons']],
                               [w.pred_instances.keypoint_scores[0] for w in want], atol=1e-4)
    # inductor sums in another order (fp32 heatmaps differ by ~1e-6 relative); on this
    # random model's flat heatmaps that can tip a near-tie of the arg-max or of the
    # sub-pixel step of single keypoints, but not of most
    dist = np.linalg.norm(got_kpts - want_kpts, axis=-1)
    assert np.median(dist) <= 0.006 and (dist <= 0.006).mean() >= 0.8, dist
    assert 'torch.compile: on (--compile on, fp32)' in res.stderr  # forced, not chosen


def test_compile_auto_is_chosen_for_long_bf16_jobs_only():
    from test_demo_outputs import demo

    from vitpose_plugin.deploy.auto import COMPILE_MIN_IMAGES
    args = demo.parse_args([])
    assert args.compile == 'auto'
    have_compiler = demo.choose_compile('bf16', 'cpu', None)[1] != \
        'no C++ compiler (g++, clang++) for inductor'
    assert demo.decide_compile(args, 'bf16', None) is have_compiler  # a video
    assert demo.decide_compile(args, 'bf16', COMPILE_MIN_IMAGES) is have_compiler
    assert demo.decide_compile(args, 'bf16', COMPILE_MIN_IMAGES - 1) is False
    assert demo.decide_compile(args, 'fp32', None) is False  # compiling pays on bf16
    assert demo.decide_compile(args, 'int8', None) is False
    assert demo.choose_compile('bf16', 'cuda', None)[0] is False  # CPUs only
    smoke = demo.parse_args(['--random-weights'])
    assert demo.decide_compile(smoke, 'bf16', None) is False
    forced = demo.parse_args(['--compile', 'on'])
    assert demo.decide_compile(forced, 'fp32', 3) is True
    with pytest.raises(demo.InputError, match='in fp32 or bf16, not with --precision fp16'):
        demo.decide_compile(forced, 'fp16', 3)
    with pytest.raises(demo.InputError, match='not with --attention-keypoint'):
        demo.decide_compile(demo.parse_args(['--compile', 'on', '--attention-keypoint',
                                             'nose']), 'fp32', 1)
    assert demo.job_images(['a.jpg', 'b.png']) == 2 and demo.job_images(['a.jpg', 'c.mp4']) is None


def test_onnxruntime_backend(tmp_path, tiny_models, images):
    """--backend onnxruntime exports the pose network on start and gives the PyTorch
    run's persons; it refuses what the graph cannot do."""
    run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'pt', '--precision', 'fp32']
             + tiny_models)
    res = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'ort', '--backend',
                    'onnxruntime'] + tiny_models)
    assert 'pose backbone: onnxruntime' in res.stdout + res.stderr
    pt = json.loads((tmp_path / 'pt' / 'sunglasses.jpg.json').read_text())['persons']
    ort = json.loads((tmp_path / 'ort' / 'sunglasses.jpg.json').read_text())['persons']
    assert [p['bbox'] for p in pt] == [p['bbox'] for p in ort] and len(pt) > 0
    # scores are heatmap maxima: they move no more than the heatmaps (~1e-6 between two
    # engines' fp32 kernels), plus the JSON's rounding to 1e-4. Keypoints are not
    # compared here: UDP's sub-pixel step divides by the heatmap's curvature, which is
    # near zero on a random model, so no bound holds on every CPU; test_deploy.py checks
    # the heatmaps and the argmax cells in-process.
    np.testing.assert_allclose([p['keypoint_scores'] for p in pt],
                               [p['keypoint_scores'] for p in ort], atol=1e-3)
    bad = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'bad', '--backend',
                    'onnxruntime', '--precision', 'bf16'] + tiny_models, check=False)
    assert bad.returncode != 0 and 'runs the fp32 graph only' in bad.stderr


def test_video(tmp_path, tiny_models, images):
    res = run_demo([images / 'demo.mp4', '--out-dir', tmp_path] + tiny_models)
    out = json.loads((tmp_path / 'demo.mp4.json').read_text())
    cap = cv2.VideoCapture(str(images / 'demo.mp4'))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert [f['frame'] for f in out['frames']] == list(range(n))
    for frame in out['frames']:
        check_persons(frame['persons'], out['keypoint_names'])
    written = cv2.VideoCapture(str(tmp_path / 'demo.mp4'))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    assert (written.get(3), written.get(4)) == (cap.get(3), cap.get(4))
    assert 'demo.mp4' in res.stdout


def test_no_person_gives_empty_list(tmp_path, tiny_models, images):
    run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path, '--bbox-thr', '1.0'] + tiny_models)
    assert json.loads((tmp_path / 'sunglasses.jpg.json').read_text())['persons'] == []
    assert (tmp_path / 'sunglasses.jpg').is_file()


def test_folder_with_bad_files(tmp_path, tiny_models, images):
    src = tmp_path / 'in'
    src.mkdir()
    img = cv2.imread(str(images / 'sunglasses.jpg'))
    cv2.imwrite(str(src / 'gray.png'), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(src / 'rgba.png'), cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(src / 'deep.png'), img.astype(np.uint16) * 257)
    (src / 'corrupt.jpg').write_bytes(b'\xff\xd8 this is not a jpeg')
    (src / 'broken.mp4').write_bytes(b'not a video either')
    shutil.copy(images / 'sunglasses.jpg', src / 'ok.jpg')
    res = run_demo([src, '--out-dir', tmp_path / 'out'] + tiny_models, check=False)
    assert res.returncode == 1
    for name in ('gray.png', 'rgba.png', 'deep.png', 'ok.jpg'):
        out = json.loads((tmp_path / 'out' / f'{name}.json').read_text())
        assert (out['width'], out['height']) == (256, 256), name
    assert 'done: 4/6 input(s) processed' in res.stdout
    assert 'corrupt.jpg: cannot read it as an image' in res.stderr
    assert 'broken.mp4: cannot open the video' in res.stderr
    assert '2 failed' in res.stderr


@pytest.mark.parametrize('what', ['empty', 'missing'])
def test_bad_input_path_is_named(tmp_path, tiny_models, what):
    path = tmp_path / what
    if what == 'empty':
        path.mkdir()
    res = run_demo([path, '--out-dir', tmp_path / 'out'] + tiny_models, check=False)
    assert res.returncode != 0 and str(path) in res.stderr
    assert ('holds no images' if what == 'empty' else 'no such file') in res.stderr


def test_failed_download_says_how_to_pass_a_file(tmp_path, tiny_models, images):
    args = list(tiny_models)
    args[args.index('--pose-checkpoint') + 1] = 'http://127.0.0.1:9/vitpose.pth'
    res = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path] + args, check=False)
    assert res.returncode != 0
    assert 'could not download the pose checkpoint http://127.0.0.1:9/vitpose.pth' in res.stderr
    assert '--pose-checkpoint /path/to/file.pth' in res.stderr


def test_random_weights_are_flagged(tmp_path, tiny_models, images):
    args = [a for a in tiny_models if not a.endswith('.pth') and a not in (
        '--det-checkpoint', '--pose-checkpoint')]
    res = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path, '--random-weights'] + args)
    assert json.loads((tmp_path / 'sunglasses.jpg.json').read_text())['random_weights'] is True
    assert 'random weights' in (res.stdout + res.stderr).lower()
    banner = cv2.imread(str(tmp_path / 'sunglasses.jpg'))[:8]
    assert banner[..., 2].max() > 200  # the red banner text is drawn at the top


def test_mmpose_inferencer_runs_plugin_configs(tiny_models, images):
    """MMPose's own MMPoseInferencer takes the plugin's config and checkpoint."""
    from mmpose.apis import MMPoseInferencer

    arg = dict(zip(tiny_models[::2], tiny_models[1::2]))
    inferencer = MMPoseInferencer(
        pose2d=arg['--pose-config'], pose2d_weights=arg['--pose-checkpoint'],
        det_model=arg['--det-config'], det_weights=arg['--det-checkpoint'], det_cat_ids=[0],
        device='cpu')
    result = next(inferencer(str(images / 'sunglasses.jpg'), return_vis=False))
    persons = result['predictions'][0]
    assert len(persons) >= 1
    assert all(len(p['keypoints']) == 17 and len(p['keypoint_scores']) == 17 for p in persons)


def test_default_input_is_the_shipped_sample(tmp_path, tiny_models):
    """`python demo/topdown_demo.py` with no input runs on demo/resources, which ships
    with the repository."""
    res = run_demo(['--out-dir', tmp_path] + tiny_models)
    assert 'done: 3/3 input(s) processed' in res.stdout
    for name in ('astronaut.jpg', 'cameraman.jpg', 'two_people.mp4'):
        assert (tmp_path / f'{name}.json').is_file() and (tmp_path / name).is_file()


@pytest.mark.parametrize('preset', sorted(DETECTOR_PRESETS))
def test_detector_presets_run_offline_with_random_weights(preset, images):
    detector = build_detector(preset, random_weights=True)
    img = cv2.imread(str(images / 'sunglasses.jpg'))
    boxes = detect(detector, img, detector_classes(preset, None), 0.0, 0.5)
    assert boxes.ndim == 2 and boxes.shape[1] == 5 and np.isfinite(boxes).all()


def test_animal_datasets_need_a_coco_detector():
    assert detector_classes('rtmdet-m-coco', 'ap10k') == COCO_ANIMALS
    with pytest.raises(ValueError, match='rtmdet-m-coco'):
        detector_classes('rtmdet-m', 'apt36k')


def test_outputs_never_overwrite_each_other(tmp_path, tiny_models, images):
    src = tmp_path / 'in'
    src.mkdir()
    img = cv2.imread(str(images / 'sunglasses.jpg'))
    cv2.imwrite(str(src / 'a.jpg'), img)
    cv2.imwrite(str(src / 'a.png'), img[:200])
    run_demo([src, '--out-dir', tmp_path / 'out'] + tiny_models)
    heights = {json.loads((tmp_path / 'out' / f'{n}.json').read_text())['height']
               for n in ('a.jpg', 'a.png')}
    assert heights == {256, 200}
    assert (tmp_path / 'out' / 'a.jpg').is_file() and (tmp_path / 'out' / 'a.png').is_file()


def _pose_only(tiny_models):
    return [a for i, a in enumerate(tiny_models)
            if not a.startswith('--det') and not tiny_models[i - 1].startswith('--det')]


def test_bboxes_file_replaces_the_detector(tmp_path, tiny_models, images):
    src = tmp_path / 'in'
    src.mkdir()
    for name in ('one.jpg', 'two.jpg', 'none.jpg'):
        shutil.copy(images / 'sunglasses.jpg', src / name)
    boxes = {'one.jpg': [[20, 10, 200, 250, 0.9]],
             'two.jpg': [[20, 10, 200, 250, 0.9], [90, 30, 240, 230, 0.8]]}
    (tmp_path / 'boxes.json').write_text(json.dumps(boxes))
    res = run_demo([src, '--out-dir', tmp_path / 'out', '--bboxes', tmp_path / 'boxes.json']
                   + _pose_only(tiny_models))  # no detector is built or downloaded
    for name, want in boxes.items():
        persons = json.loads((tmp_path / 'out' / f'{name}.json').read_text())['persons']
        assert [p['bbox'] + [p['bbox_score']] for p in persons] == want
    assert json.loads((tmp_path / 'out' / 'none.jpg.json').read_text())['persons'] == []
    assert 'has no boxes for 1 input(s) / frame(s)' in res.stderr and 'none.jpg' in res.stderr
    # a malformed entry is named
    (tmp_path / 'bad.json').write_text(json.dumps({'one.jpg': [[20, 10, 200]]}))
    bad = run_demo([src, '--out-dir', tmp_path / 'bad', '--bboxes', tmp_path / 'bad.json']
                   + _pose_only(tiny_models), check=False)
    assert bad.returncode != 0 and "'one.jpg'[0]: expected [x1, y1, x2, y2, score]" in bad.stderr


CLIP = REPO / 'demo' / 'resources' / 'two_people.mp4'


def clip_boxes():
    """Per-frame boxes of the two people of the shipped clip (how it was made: the
    astronaut at x = 10 + 6t, the cameraman from frame 8 at x = 400 - 3(t - 8))."""
    frames = {}
    for t in range(24):
        boxes = [[10 + 6 * t, 60, 250 + 6 * t, 300, 0.9]]
        if t >= 8:
            x = 400 - 3 * (t - 8)
            boxes.append([x, 120, x + 220, 340, 0.8])
        frames[str(t)] = boxes
    return frames


@pytest.mark.parametrize('smooth', [False, True])
def test_video_persons_keep_their_identity(tmp_path, tiny_models, smooth):
    (tmp_path / 'boxes.json').write_text(json.dumps(clip_boxes()))
    run_demo([CLIP, '--out-dir', tmp_path, '--bboxes', tmp_path / 'boxes.json']
             + (['--smooth'] if smooth else []) + _pose_only(tiny_models))
    frames = json.loads((tmp_path / 'two_people.mp4.json').read_text())['frames']
    ids = [[p['track_id'] for p in f['persons']] for f in frames]
    assert ids[:8] == [[0]] * 8  # the astronaut
    assert ids[8:] == [[0, 1]] * 16  # the cameraman, who appears later, gets a new id
    # each identity keeps its colour in the drawn video: the top edge of its box
    video = cv2.VideoCapture(str(tmp_path / 'two_people.mp4'))
    for t in range(24):
        ok, frame = video.read()
        assert ok
        for (x1, y1, x2, _, _), track in zip(clip_boxes()[str(t)], ids[t]):
            edge = frame[int(y1), int(x1) + 40:int(x2) - 40].reshape(-1, 3).mean(0)
            assert np.abs(edge - PALETTE[track]).max() < 40, (t, track, edge)


def test_pose_stage_runs_all_persons_in_one_batch(tiny_models, images):
    """With flip test: one batch of the crops and one of their flips; --no-flip: one."""
    from mmpose.apis import init_model
    arg = dict(zip(tiny_models[::2], tiny_models[1::2]))
    pose = init_model(arg['--pose-config'], arg['--pose-checkpoint'], device='cpu')
    batches = []
    pose.backbone.register_forward_hook(lambda m, i, o: batches.append(i[0].shape[0]))
    pipeline = TopdownPipeline(pose)
    img = cv2.imread(str(images / 'sunglasses.jpg'))
    boxes = np.array([[20, 10, 200, 250, 0.9], [90, 30, 240, 230, 0.8],
                      [0, 0, 100, 100, 0.7]], np.float32)
    with torch.no_grad():
        pipeline.estimate(img, boxes)
        pose.test_cfg['flip_test'] = False
        pipeline.estimate(img, boxes)
    assert batches == [3, 3, 3]


def _multi_head_files(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    from helpers import CONFIGS, TINY_ARCH
    cfg = Config.fromfile(str(CONFIGS / 'vitpose' / 'multi_dataset' /
                              'td-hm_vitpose-plus-small_8xb64-210e_six-datasets-256x192.py'))
    cfg.model.backbone.update(arch=dict(TINY_ARCH), init_cfg=None, part_features=16)
    for head in cfg.model.heads.values():
        head.update(in_channels=TINY_ARCH['embed_dims'], deconv_out_channels=(16, 16))
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    cfg.dump(str(tmp_path / 'plus.py'))
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'plus.pth')
    return cfg, tmp_path / 'plus.py', tmp_path / 'plus.pth'


def test_dataset_selects_head_expert_keypoints_and_skeleton(tmp_path, images):
    from mmpose.apis import MMPoseInferencer
    cfg, config, ckpt = _multi_head_files(tmp_path)
    (tmp_path / 'boxes.json').write_text(json.dumps({'sunglasses.jpg': [[20, 10, 200, 250, 1]]}))
    args = ['--pose-config', config, '--pose-checkpoint', ckpt, '--bboxes',
            tmp_path / 'boxes.json']
    run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'mpii', '--dataset', 'mpii']
             + args)
    out = json.loads((tmp_path / 'mpii' / 'sunglasses.jpg.json').read_text())
    assert len(out['keypoint_names']) == 16 and out['keypoint_names'][0] == 'right_ankle'
    assert len(out['persons'][0]['keypoints']) == 16
    bad = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'bad', '--dataset',
                    'crowdpose'] + args, check=False)
    assert bad.returncode != 0 and "'crowdpose' has no head" in bad.stderr
    assert 'ap10k' in bad.stderr and 'coco_wholebody' in bad.stderr
    # the same selection through inference_topdown and MMPoseInferencer
    model = init_model(str(config), str(ckpt), device='cpu')
    model.default_dataset = 'aic'
    result, = inference_topdown(model, str(images / 'sunglasses.jpg'),
                                np.array([[20, 10, 200, 250]], np.float32))
    assert result.pred_instances.keypoints.shape == (1, 14, 2)
    assert model.dataset_meta['dataset_name'] == 'aic'
    cfg.model.default_dataset = 'ap10k'
    inferencer = MMPoseInferencer(pose2d=cfg, pose2d_weights=str(ckpt),
                                  det_model='whole_image', device='cpu')
    persons = next(inferencer(str(images / 'sunglasses.jpg')))['predictions'][0]
    assert len(persons[0]['keypoints']) == 17
    assert inferencer.inferencer.model.dataset_meta['dataset_name'] == 'ap10k'


def test_random_weights_keep_the_best_few_boxes(tiny_models, monkeypatch):
    """--random-weights: the detector's boxes are phantoms; the 3 best-scored are kept
    (a random RTMDet-m scores every anchor near 1), and NMS sees few candidates."""
    import vitpose_plugin.apis.topdown_pipeline as pipeline_module
    arg = dict(zip(tiny_models[::2], tiny_models[1::2]))
    pose = init_model(arg['--pose-config'], arg['--pose-checkpoint'], device='cpu')
    found = np.array([[0, 0, 10, 10, 0.5], [5, 5, 20, 20, 0.9], [1, 1, 9, 9, 0.4],
                      [2, 2, 30, 30, 0.95], [3, 3, 8, 8, 0.7]], np.float32)
    monkeypatch.setattr(pipeline_module, 'detect', lambda *args: found)
    pipeline = TopdownPipeline(pose, detector=object(), max_persons=3, random_weights=True)
    np.testing.assert_array_equal(pipeline.detect(None), found[[3, 1, 4]])
    assert len(TopdownPipeline(pose, detector=object()).detect(None)) == 5
    detector = build_detector('rtmdet-nano', random_weights=True)
    assert detector.bbox_head.test_cfg['nms_pre'] == pipeline_module.RANDOM_NMS_PRE
