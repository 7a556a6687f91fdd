"""Crafted and careless inputs to the demo: refused or named, bounded, and one bad input
never stops the others."""
import json
import struct
import time
import zlib

import cv2
import pytest
from test_demo_outputs import BOX, boxes_file, demo, make_video, pose_only, run

from vitpose_plugin.apis.topdown_pipeline import TopdownPipeline


def png(width, height, rows):
    """A 1-bit grey PNG whose rows come from ``rows()`` (bytes each), compressed as it
    goes: a 16000x16000 one is a 32 KB file."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack(
            '>I', zlib.crc32(kind + data))
    z, body = zlib.compressobj(9), b''
    for row in rows():
        body += z.compress(b'\0' + row)
    body += z.flush()
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1,
                                                             0, 0, 0, 0))
            + chunk(b'IDAT', body) + chunk(b'IEND', b''))


def test_huge_image_is_refused_from_its_header(tmp_path, tiny_models, images, capsys,
                                               monkeypatch):
    """16000x16000 (OpenCV would decode 768 MB) is refused by name without decoding;
    the limit is an option, and the other inputs are processed."""
    side = 16000
    src = tmp_path / 'in'
    src.mkdir()
    (src / 'bomb.png').write_bytes(png(side, side, lambda: [bytes(side // 8)] * side))
    assert (src / 'bomb.png').stat().st_size < 64_000
    (src / 'ok.jpg').write_bytes((images / 'sunglasses.jpg').read_bytes())
    decoded, imread = [], cv2.imread
    monkeypatch.setattr(cv2, 'imread', lambda path, *flags: decoded.append(path) or
                        imread(path, *flags))
    monkeypatch.setattr(cv2, 'imdecode', lambda *args: decoded.append(args))
    start = time.perf_counter()
    boxes = boxes_file(tmp_path, {'ok.jpg': [BOX]})
    code, stdout, err = run([src, '--out-dir', tmp_path / 'out'] + boxes,
                            pose_only(tiny_models), capsys)
    assert code == 1 and 'done: 1/2' in stdout
    assert f'{src / "bomb.png"}: 16000x16000 = 256,000,000 pixels, over the limit of ' \
           '50,000,000 (--max-pixels)' in err
    assert decoded == [str(src / 'ok.jpg')]  # the bomb was never decoded
    assert time.perf_counter() - start < 60
    assert not (tmp_path / 'out' / 'bomb.png.json').exists()
    # a lower limit refuses the 256x256 picture too, and videos by their frame size
    make_video(src / 'clip.mp4', 2, size=(64, 48))
    code, _, err = run([src, '--out-dir', tmp_path / 'low', '--max-pixels', '3000'] + boxes,
                       pose_only(tiny_models), capsys)
    assert 'ok.jpg: 256x256 = 65,536 pixels, over the limit of 3,000' in err
    assert 'clip.mp4: 64x48 = 3,072 pixels, over the limit of 3,000' in err
    assert code == 1


def test_truncated_jpeg_is_named(tmp_path, tiny_models, images, capsys):
    data = (images / 'sunglasses.jpg').read_bytes()
    (tmp_path / 'cut.jpg').write_bytes(data[:len(data) // 2])
    code, stdout, err = run([tmp_path / 'cut.jpg', '--out-dir', tmp_path / 'out']
                            + boxes_file(tmp_path, {'cut.jpg': [BOX]}),
                            pose_only(tiny_models), capsys)
    assert code == 0 and 'done: 1/1' in stdout, err
    named = f'{tmp_path / "cut.jpg"}: truncated JPEG: no end-of-image marker after its last scan'
    assert 'warning: ' + named + '; processing what decodes' in stdout  # as it happens
    assert '1 corrupt input(s), processed as far as they decode:\n  ' + named in err
    assert json.loads((tmp_path / 'out' / 'cut.jpg.json').read_text())['height'] == 256
    # the whole file is not named
    demo_img, damage = demo.read_image(str(images / 'sunglasses.jpg'))
    assert damage is None and demo_img.shape == (256, 256, 3)


BAD_VALUES = {
    'nan': ('[[NaN, 10, 200, 250, 0.9]]', 'x1 = nan is not a finite number'),
    'infinity': ('[[20, 10, Infinity, 250, 0.9]]', 'x2 = inf is not a finite number'),
    'overflow': ('[[20, 10, 200, 1e400, 0.9]]', 'y2 = inf is not a finite number'),
    'huge': ('[[20, 10, 200, 1e30, 0.9]]', 'y2 = 1e+30 is not a finite number below 1e+07'),
    'score': ('[[20, 10, 200, 250, 7]]', 'score 7 is not within [0, 1]'),
    'negative score': ('[[20, 10, 200, 250, -0.5]]', 'score -0.5 is not within [0, 1]'),
    'boolean': ('[[20, 10, 200, 250, true]]', 'expected [x1, y1, x2, y2, score], got'),
    'nested': ('[' * 60 + ']' * 60, 'expected [x1, y1, x2, y2, score], got [[[[...]]]]'),
}


@pytest.mark.parametrize('case', sorted(BAD_VALUES))
def test_bad_box_values_are_named(tmp_path, tiny_models, images, capsys, case):
    text, message = BAD_VALUES[case]
    (tmp_path / 'boxes.json').write_text('{"sunglasses.jpg": %s}' % text)
    code, _, err = run([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'out', '--bboxes',
                        tmp_path / 'boxes.json'], pose_only(tiny_models), capsys)
    assert code == 1
    assert f"--bboxes {tmp_path / 'boxes.json'}: 'sunglasses.jpg'" in err and message in err
    assert not (tmp_path / 'out').exists()  # refused before anything is written


def test_bboxes_structure_errors_name_file_and_key(tmp_path, tiny_models, capsys):
    clip = tmp_path / 'clip.mp4'
    make_video(clip, 2)
    boxes = tmp_path / 'boxes.json'
    boxes.write_text('{"0": ' + '[' * 100_000 + ']' * 100_000 + '}')
    code, _, err = run([clip, '--out-dir', tmp_path / 'out', '--bboxes', boxes],
                       pose_only(tiny_models), capsys)
    assert code == 1 and f'--bboxes {boxes}: nested too deeply to read' in err
    boxes.write_text(json.dumps({'0': [[1, 2, 30, 40, 0.5]], '\u0661': []}))
    code, _, err = run([clip, '--out-dir', tmp_path / 'out', '--bboxes', boxes],
                       pose_only(tiny_models), capsys)
    assert code == 1
    assert f"--bboxes {boxes}: 'clip.mp4': frame key '\u0661' is not a frame index" in err


def test_one_failing_input_does_not_stop_the_others(tmp_path, tiny_models, images, capsys,
                                                    monkeypatch):
    """Any exception on an input (here the drawing, as MMPose's visualizer crashed on
    NaN boxes) is reported by name, and the remaining inputs are processed."""
    src = tmp_path / 'in'
    src.mkdir()
    for name in ('a.jpg', 'b.jpg'):
        (src / name).write_bytes((images / 'sunglasses.jpg').read_bytes())
    draw, calls = TopdownPipeline.draw, []

    def fail_first(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError('cannot convert float NaN to integer')
        return draw(self, *args, **kwargs)

    monkeypatch.setattr(TopdownPipeline, 'draw', fail_first)
    code, stdout, err = run([src, '--out-dir', tmp_path / 'out'] + boxes_file(
        tmp_path, {'a.jpg': [BOX], 'b.jpg': [BOX]}), pose_only(tiny_models), capsys)
    assert code == 1 and 'done: 1/2' in stdout
    assert f'{src / "a.jpg"}: ValueError: cannot convert float NaN to integer' in err
    assert not (tmp_path / 'out' / 'a.jpg').exists()
    assert json.loads((tmp_path / 'out' / 'b.jpg.json').read_text())['persons']


def test_wrong_onnx_file_is_refused_at_start(tmp_path, tiny_models, images, capsys):
    """A file onnxruntime cannot load, and a graph whose outputs are not this pose
    backbone's, are named before any input is read."""
    import onnx
    from onnx import TensorProto, helper

    (tmp_path / 'text.onnx').write_text('not a graph')
    graph = helper.make_graph(
        [helper.make_node('Identity', ['images'], ['feat0'])], 'other',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, ['batch', 3, 256, 192])],
        [helper.make_tensor_value_info('feat0', TensorProto.FLOAT, ['batch', 3, 256, 192])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]),
              str(tmp_path / 'other.onnx'))
    for name, message in (('text.onnx', 'onnxruntime cannot load it'),
                          ('other.onnx', 'its feature maps [(1, 3, 256, 192)] for a (1, 3, '
                                         '256, 192) input are not those of this pose backbone '
                                         '[(1, 64, 16, 12)]')):
        code, _, err = run([images / 'sunglasses.jpg', '--out-dir', tmp_path / 'out',
                            '--backend', 'onnxruntime', '--onnx-file', tmp_path / name]
                           + boxes_file(tmp_path, {}), pose_only(tiny_models), capsys)
        assert code == 1 and f'--onnx-file {tmp_path / name}: {message}' in err
        assert not list((tmp_path / 'out').iterdir())
