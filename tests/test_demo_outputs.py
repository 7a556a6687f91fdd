"""The demo's outputs: never over an input, written whole or not at all, every finished
video frame kept when a run stops, and MMPose's own JSON layout."""
import hashlib
import json
import os
import signal
import sys

import cv2
import numpy as np
import pytest

from helpers import load_script, uncompiled
from vitpose_plugin.apis.topdown_pipeline import TopdownPipeline

demo = load_script('demo/topdown_demo.py')  # run in-process


def make_video(path, frames, size=(96, 64), fourcc='mp4v'):
    """A short clip of a bright block moving right on grey, written with OpenCV."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 8, (w, h))
    assert writer.isOpened(), path
    for t in range(frames):
        img = np.full((h, w, 3), 90, np.uint8)
        img[8:h - 8, 4 + 2 * t:36 + 2 * t] = 230
        writer.write(img)
    writer.release()


def frame_count(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())}


def pose_only(tiny_models):
    return [a for i, a in enumerate(tiny_models)
            if not a.startswith('--det') and not tiny_models[i - 1].startswith('--det')]


BOX = [20, 10, 200, 250, 0.9]  # a person-sized box in the 256x256 test picture


def boxes_file(tmp_path, entries):
    """--bboxes FILE: the tests give boxes rather than run the detector."""
    (tmp_path / 'boxes.json').write_text(json.dumps(entries))
    return ['--bboxes', tmp_path / 'boxes.json']


def run(args, tiny_models, capsys):
    """main() in-process: (exit status, stdout, stderr); uncompiled (``run_demo``)."""
    code = 0
    try:
        demo.main(uncompiled([str(a) for a in args] + tiny_models))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize('what', ['folder', 'video'])
def test_outputs_never_replace_inputs(tmp_path, tiny_models, images, capsys, what):
    """--out-dir the input folder: refused by name before anything is written."""
    src = tmp_path / 'in'
    src.mkdir()
    (src / 'a.jpg').write_bytes((images / 'sunglasses.jpg').read_bytes())
    make_video(src / 'clip.mp4', 6)
    before = digest(src)
    target = src if what == 'folder' else src / 'clip.mp4'
    code, _, err = run([target, '--out-dir', src], tiny_models, capsys)
    assert code == 1
    name = 'a.jpg' if what == 'folder' else 'clip.mp4'
    assert f'would replace the input {src / name}' in err
    assert digest(src) == before  # not one byte written, nothing added


def test_clashing_names_and_links_in_the_out_dir(tmp_path, tiny_models, images, capsys):
    """x.avi and x.avi.mp4 both keep their videos; links already in the output folder
    are replaced, and what they point to is left alone."""
    src, out, elsewhere = tmp_path / 'in', tmp_path / 'out', tmp_path / 'elsewhere'
    for d in (src, out, elsewhere):
        d.mkdir()
    make_video(src / 'x.avi', 3, fourcc='MJPG')
    make_video(src / 'x.avi.mp4', 5)
    (src / 'a.jpg').write_bytes((images / 'sunglasses.jpg').read_bytes())
    for name in ('a.jpg', 'a.jpg.json', 'x.avi.json'):
        (elsewhere / name).write_bytes(b'precious')
        os.symlink(elsewhere / name, out / name)
    code, stdout, err = run([src, '--out-dir', out] + boxes_file(tmp_path, {'a.jpg': [BOX]}),
                            pose_only(tiny_models), capsys)
    assert code == 0, err
    assert 'done: 3/3' in stdout
    assert digest(elsewhere) == {n: hashlib.sha256(b'precious').hexdigest()
                                 for n in ('a.jpg', 'a.jpg.json', 'x.avi.json')}
    for name in ('a.jpg', 'a.jpg.json', 'x.avi.json'):
        assert (out / name).is_file() and not (out / name).is_symlink()
    assert frame_count(out / 'x.avi.mp4') == 5  # the input named x.avi.mp4
    assert frame_count(out / 'x.avi.2.mp4') == 3  # x.avi, renamed past it
    assert len(json.loads((out / 'x.avi.json').read_text())['frames']) == 3
    assert len(json.loads((out / 'x.avi.mp4.json').read_text())['frames']) == 5
    assert not [p for p in out.iterdir() if p.name.startswith('.') or p.suffix == '.jsonl']


def test_failed_video_keeps_its_finished_frames(tmp_path, tiny_models, images, capsys):
    """An error at frame 4 leaves the 4 finished frames as a matching video + JSON
    (replacing the previous run's pair), and the run goes on with the next input."""
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    out.mkdir()
    make_video(src / 'clip.mp4', 8)
    (src / 'z.jpg').write_bytes((images / 'sunglasses.jpg').read_bytes())
    frames = {str(t): [[10, 5, 60, 60, 0.9]] for t in range(8)}
    frames['4'] = [[500, 5, 560, 60, 0.9]]  # far right of the 96 px wide frame
    (out / 'clip.mp4.json').write_text('{"frames": "of a previous run"}')
    code, stdout, err = run([src, '--out-dir', out] + boxes_file(
        tmp_path, {'clip.mp4': frames, 'z.jpg': [BOX]}), pose_only(tiny_models), capsys)
    assert code == 1 and 'done: 1/2' in stdout
    assert "'clip.mp4' frame 4[0]: box [500.0, 5.0, 560.0, 60.0] lies more than one " \
           'image size outside the 96x64 image' in err
    result = json.loads((out / 'clip.mp4.json').read_text())
    assert result['complete'] is False and 'lies more than one image size' in result['error']
    assert [f['frame'] for f in result['frames']] == [0, 1, 2, 3]
    assert frame_count(out / 'clip.mp4') == 4
    assert len(json.loads((out / 'z.jpg.json').read_text())['persons']) == 1


@pytest.mark.parametrize('signum,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_finalises_the_video(tmp_path, tiny_models, capsys, monkeypatch, signum, code):
    """Ctrl-C / SIGTERM at frame 5: the video plays with the 5 finished frames, the JSON
    holds them, and while it ran the JSON Lines stream had every finished frame; also
    where the process ignored and blocked both signals before (the demo owns them while
    it runs, and gives the process its settings back)."""
    make_video(tmp_path / 'clip.mp4', 40)
    out = tmp_path / 'out'
    estimate, streamed = TopdownPipeline.estimate, []

    def interrupt_at_frame_5(self, img, boxes):
        lines = (out / 'clip.mp4.jsonl').read_text().splitlines()
        streamed.append(len(lines) - 1)  # the first line is the header
        if len(streamed) == 6:
            os.kill(os.getpid(), signum)
        return estimate(self, img, boxes)

    monkeypatch.setattr(TopdownPipeline, 'estimate', interrupt_at_frame_5)
    ignored = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(ignored))
    try:
        status, _, err = run([tmp_path / 'clip.mp4', '--out-dir', out] + boxes_file(
            tmp_path, {str(t): [[10, 5, 60, 60, 0.9]] for t in range(40)}),
            pose_only(tiny_models), capsys)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # given back
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for s, handler in ignored.items():
            signal.signal(s, handler)
    assert status == code and 'stopped' in err
    assert streamed == [0, 1, 2, 3, 4, 5]
    result = json.loads((out / 'clip.mp4.json').read_text())
    assert result['complete'] is False and 'interrupted' in result['error']
    assert [f['frame'] for f in result['frames']] == [0, 1, 2, 3, 4]
    assert frame_count(out / 'clip.mp4') == 5
    assert sorted(p.name for p in out.iterdir()) == ['clip.mp4', 'clip.mp4.json']


def test_mmpose_json_layout(tmp_path, tiny_models, images, capsys):
    """--json-format mmpose: MMPose demo's --save-predictions layout, for pictures and
    videos, read back with MMPose's own keys; the video codec is the best OpenCV has."""
    from mmpose.structures import split_instances

    src = tmp_path / 'in'
    src.mkdir()
    (src / 'a.jpg').write_bytes((images / 'sunglasses.jpg').read_bytes())
    make_video(src / 'clip.mp4', 3)
    boxes = {'a.jpg': [BOX, [90, 30, 240, 230, 0.8]],
             'clip.mp4': {str(t): [[10, 5, 60, 60, 0.9]] for t in range(3)}}
    code, _, err = run([src, '--out-dir', tmp_path / 'out', '--json-format', 'mmpose']
                       + boxes_file(tmp_path, boxes), pose_only(tiny_models), capsys)
    assert code == 0, err
    img = json.loads((tmp_path / 'out' / 'a.jpg.json').read_text())
    assert set(img) == {'meta_info', 'instance_info'}
    assert img['meta_info']['dataset_name'] == 'coco'
    assert img['meta_info']['keypoint_id2name']['0'] == 'nose'
    assert len(img['meta_info']['sigmas']) == 17
    persons = img['instance_info']
    assert [p['bbox'] for p in persons] == [[b[:4]] for b in boxes['a.jpg']]  # [[x1, ...]]
    assert [p['bbox_score'] for p in persons] == pytest.approx([0.9, 0.8], abs=1e-7)
    for p in persons:
        assert np.shape(p['keypoints']) == (17, 2) and len(p['keypoint_scores']) == 17
    # the same keys as MMPose's split_instances gives for its own predictions
    from mmengine.structures import InstanceData
    inst = InstanceData(keypoints=np.zeros((1, 17, 2)), keypoint_scores=np.zeros((1, 17)),
                        bboxes=np.zeros((1, 4)), bbox_scores=np.ones(1))
    assert set(split_instances(inst)[0]) == set(persons[0])
    video = json.loads((tmp_path / 'out' / 'clip.mp4.json').read_text())
    assert [f['frame_id'] for f in video['instance_info']] == [1, 2, 3]
    assert all(set(p) == set(persons[0]) | {'track_id'}
               for f in video['instance_info'] for p in f['instances'])
    # H.264 where this OpenCV build writes it (browsers play it), else mp4v with a note
    probe = cv2.VideoWriter(str(tmp_path / 'probe.mp4'), cv2.VideoWriter_fourcc(*'avc1'), 8,
                            (96, 64))
    h264 = probe.isOpened()
    probe.release()
    cap = cv2.VideoCapture(str(tmp_path / 'out' / 'clip.mp4'))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, 'little').decode().lower()
    assert fourcc in (('avc1', 'h264') if h264 else ('mp4v', 'fmp4'))
    assert demo.VideoOutput.fourcc == ('avc1' if h264 else 'mp4v')

