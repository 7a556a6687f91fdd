"""demo/topdown_demo.py end to end, with tiny locally saved checkpoints."""
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmpose.apis import inference_topdown, init_model

from helpers import check_persons, run_demo
from vitpose_plugin.deploy import fold_batchnorm


def test_image(tmp_path, tiny_models, images):
    run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path, '--draw-heatmap'] + tiny_models)
    out = json.loads((tmp_path / 'sunglasses.json').read_text())
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
    boxes = np.array([p['bbox'] for p in out['persons']], np.float32)
    with torch.no_grad():
        want = inference_topdown(model, str(images / 'sunglasses.jpg'), boxes)
    for p, w in zip(out['persons'], want):
        np.testing.assert_allclose(p['keypoints'], w.pred_instances.keypoints[0], atol=0.006)
        np.testing.assert_allclose(p['keypoint_scores'], w.pred_instances.keypoint_scores[0],
                                   atol=1e-3)


def test_onnxruntime_backend(tmp_path, tiny_models, images):
    """--backend onnxruntime exports the pose network on start and gives the PyTorch
    run's persons; it refuses what the graph cannot do."""
    run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'pt'] + tiny_models)
    res = run_demo([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'ort', '--backend',
                    'onnxruntime'] + tiny_models)
    assert 'pose network: onnxruntime' in res.stdout + res.stderr
    pt = json.loads((tmp_path / 'pt' / 'sunglasses.json').read_text())['persons']
    ort = json.loads((tmp_path / 'ort' / 'sunglasses.json').read_text())['persons']
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
    out = json.loads((tmp_path / 'demo.json').read_text())
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
    assert json.loads((tmp_path / 'sunglasses.json').read_text())['persons'] == []
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
    for name in ('gray', 'rgba', 'deep', 'ok'):
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
    assert json.loads((tmp_path / 'sunglasses.json').read_text())['random_weights'] is True
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
