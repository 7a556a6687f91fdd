"""The demo's inputs, checked before use: images (size from the header, refused over a
pixel limit before decoding, cut-off files named), folders of images and videos, and
``--bboxes`` files (every value finite and plausible, errors naming the file and key).

Every refusal is an :class:`~vitpose_plugin.apis.topdown_pipeline.InputError` whose
message names the file and what is wrong.
"""
import json
import math
import os.path as osp
import reprlib
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from .topdown_pipeline import InputError

IMAGE_EXTS = {'.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'}
VIDEO_EXTS = {'.mp4', '.avi', '.mov', '.mkv', '.webm'}
DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP; an 8K frame is 33 MP
MAX_COORDINATE = 1e7  # --bboxes values beyond this are mistakes, not pixels


def image_size(path: str) -> Optional[Tuple[int, int]]:
    """(width, height) from the file's header alone (nothing is decoded), or None if it
    is not an image Pillow knows."""
    from PIL import Image, UnidentifiedImageError
    bomb, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # --max-pixels applies
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = bomb


def damage(data: bytes) -> Optional[str]:
    """What is missing from a JPEG or PNG file's end (a cut-off download or copy), or
    None. OpenCV decodes such files without a word, painting the rest grey."""
    if data[:3] == b'\xff\xd8\xff':  # entropy-coded data escapes 0xff, so no false EOI
        if data.rfind(b'\xff\xd9') < data.rfind(b'\xff\xda'):
            return 'truncated JPEG: no end-of-image marker after its last scan'
    elif data[:8] == b'\x89PNG\r\n\x1a\n' and data.rfind(b'IEND') < 0:
        return 'truncated PNG: no IEND chunk'
    return None


def read_image(path, max_pixels: int = DEFAULT_MAX_PIXELS):
    """(BGR uint8 image, damage or None). The size is read from the header and checked
    against ``max_pixels`` before the image is decoded; grayscale, RGBA and 16-bit
    files are converted by OpenCV."""
    if not osp.isfile(path):
        raise InputError(f'{path}: no such file')
    size = image_size(path)
    if size is None:
        raise InputError(f'{path}: cannot read it as an image (unsupported or corrupt file)')
    check_pixels(path, *size, max_pixels)
    img = cv2.imread(path, cv2.IMREAD_COLOR)  # (imdecode refuses a cut-off JPEG whole)
    if img is None:
        raise InputError(f'{path}: cannot read it as an image (unsupported or corrupt file)')
    with open(path, 'rb') as f:
        return img, damage(f.read())


def check_pixels(path, width: int, height: int, max_pixels: int):
    if width * height > max_pixels:
        raise InputError(f'{path}: {width}x{height} = {width * height:,} pixels, over the '
                         f'limit of {max_pixels:,} (--max-pixels)')


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


def is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def _short(value) -> str:
    """repr() cut to a line (a crafted file may nest or repeat without end)."""
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 3, 6, 60, 60


def _boxes(entry, where: str) -> np.ndarray:
    """(N, 5) boxes of one image / frame; every value finite, boxes ordered, scores in
    [0, 1]."""
    if not isinstance(entry, list):
        raise InputError(f'{where}: expected a list of [x1, y1, x2, y2, score], got '
                         f'{type(entry).__name__}')
    for j, box in enumerate(entry):
        if not (isinstance(box, list) and len(box) == 5 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise InputError(f'{where}[{j}]: expected [x1, y1, x2, y2, score], got '
                             f'{_short(box)}')
        for name, v in zip(('x1', 'y1', 'x2', 'y2', 'score'), box):
            if not (math.isfinite(v) and abs(v) < MAX_COORDINATE):
                raise InputError(f'{where}[{j}]: {name} = {_short(v)} is not a finite number '
                                 f'below {MAX_COORDINATE:g} in size')
        if box[2] <= box[0] or box[3] <= box[1]:
            raise InputError(f'{where}[{j}]: expected [x1, y1, x2, y2, score] with x2 > x1 '
                             f'and y2 > y1, got {_short(box)}')
        if not 0 <= box[4] <= 1:
            raise InputError(f'{where}[{j}]: score {box[4]!r} is not within [0, 1]')
    return np.asarray(entry, np.float32).reshape(-1, 5)


def load_bboxes(path: str, inputs, single_video: bool):
    """{input file name: (N, 5) boxes} (a video: {frame index: (N, 5)}), validated."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise InputError(f'--bboxes {path}: {e}') from e
    except RecursionError as e:
        raise InputError(f'--bboxes {path}: nested too deeply to read (expected '
                         '{"a.jpg": [[x1, y1, x2, y2, score], ...]})') from e
    if not isinstance(data, dict):
        raise InputError(f'--bboxes {path}: expected a JSON object keyed by file name'
                         + (' or frame index' if single_video else ''))
    if single_video:
        name = osp.basename(inputs[0])
        return {name: {_frame(k, f'--bboxes {path}: {name!r}'): _boxes(
            v, f'--bboxes {path}: frame {k!r}') for k, v in data.items()}}
    out = {}
    for name, entry in data.items():
        where = f'--bboxes {path}: {_short(name)}'
        if isinstance(entry, dict):  # a video in a folder: {frame: boxes}
            out[name] = {_frame(k, where): _boxes(v, f'{where} frame {_short(k)}')
                         for k, v in entry.items()}
        else:
            out[name] = _boxes(entry, where)
    return out


def _frame(key: str, where: str) -> int:
    if not (key.isascii() and key.isdigit()):  # '١'.isdigit() is True, int() takes it
        raise InputError(f'{where}: frame key {_short(key)} is not a frame index '
                         '("0", "1", ...)')
    return int(key)


def check_box_extent(boxes: np.ndarray, img: np.ndarray, where: str):
    """Refuse boxes further than one image size outside the image: no person is there,
    and such values (e.g. a wrong scale) end in nonsense crops and drawings."""
    h, w = img.shape[:2]
    for j, box in enumerate(boxes):
        if box[0] < -w or box[1] < -h or box[2] > 2 * w or box[3] > 2 * h:
            raise InputError(f'{where}[{j}]: box {[round(float(v), 2) for v in box[:4]]} '
                             f'lies more than one image size outside the {w}x{h} image')
