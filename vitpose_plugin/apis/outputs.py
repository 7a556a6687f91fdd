"""The demo's outputs, written so that nothing is lost: no output replaces an input,
files appear whole (a temporary name, renamed when complete; a link in the way is
replaced, never followed), and a video stopped by an error or a signal keeps every
finished frame (a playable video, its JSON, and a JSON line per frame while it runs).
"""
import contextlib
import json
import logging
import os
import os.path as osp
import signal
import tempfile
import threading
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log

from .inputs import is_video
from .topdown_pipeline import InputError


def plan_outputs(inputs, out_dir: str) -> Dict[str, Tuple[str, str]]:
    """{input: (picture or video path, JSON path)} under ``out_dir``.

    Pictures and ``.mp4`` videos keep their names, other videos get ``.mp4`` added (or
    ``.2.mp4``, ... where an input already has that name: ``x.avi`` beside
    ``x.avi.mp4``), and JSON is the input's name plus ``.json``. Raises
    :class:`InputError` if an output would replace an input."""
    taken = {osp.basename(p) for p in inputs if not is_video(p) or
             p.lower().endswith('.mp4')}
    plan = {}
    for path in inputs:
        name = osp.basename(path)
        pic = name
        if is_video(path) and not name.lower().endswith('.mp4'):
            pic, k = name + '.mp4', 2
            while pic in taken:
                pic, k = f'{name}.{k}.mp4', k + 1
            taken.add(pic)
        plan[path] = (osp.join(out_dir, pic), osp.join(out_dir, name + '.json'))
    locations = {_location(p): p for p in inputs}
    files = {}  # hard links
    for p in inputs:
        with contextlib.suppress(OSError):
            s = os.stat(p)
            files[(s.st_dev, s.st_ino)] = p
    for outputs in plan.values():
        for out in outputs:
            src = locations.get(_location(out))
            if src is None and osp.isfile(out) and not osp.islink(out):
                s = os.stat(out)
                src = files.get((s.st_dev, s.st_ino))
            if src is not None:
                raise InputError(f'--out-dir {out_dir}: writing {out} would replace the input '
                                 f'{src}; choose another --out-dir')
    return plan


def _location(path: str) -> str:
    """The path with its folder resolved but not its last part: a link there is a file
    of its own, which an output replaces without following."""
    return osp.normcase(osp.join(osp.realpath(osp.dirname(osp.abspath(path))),
                                 osp.basename(path)))


def _temporary(path: str, suffix: str = '.part') -> str:
    """A new, empty, hidden file beside ``path``, with the permissions of a new file."""
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path) or '.', suffix=suffix,
                               prefix=f'.{osp.basename(path)}.')
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def write_atomic(path: str, data: bytes):
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``:
    a reader never sees half a file, and a link at ``path`` is replaced, not followed."""
    tmp = _temporary(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str):
    with contextlib.suppress(OSError):
        os.unlink(path)


def to_json(obj) -> bytes:
    """Strict JSON (NaN or infinity raise ValueError rather than write invalid JSON)."""
    return json.dumps(obj, indent=1, allow_nan=False).encode()


def jsonable(obj):
    """numpy arrays and scalars (MMPose's dataset meta, split instances) as JSON types."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT / SIGTERM until the block is done (renaming finished outputs)."""
    if not hasattr(signal, 'pthread_sigmask') or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that open videos are finalised."""


class VideoOutput:
    """A video's rendering and JSON, written so that nothing finished is lost.

    Frames go to a hidden temporary ``.mp4`` beside the output and, one JSON line each,
    to ``<JSON path>l`` (flushed per frame: a killed run keeps them). :meth:`close`
    renames the video into place and writes the JSON with every finished frame, also
    when the video stopped early (``"complete": false``). Signals wait until it is done.
    """
    fourcc = None  # the codec this OpenCV build writes, found on the first video

    def __init__(self, video_path: str, json_path: str, fps: float, header: dict,
                 mmpose_layout: bool):
        self.video_path, self.json_path, self.fps = video_path, json_path, fps
        self.header, self.mmpose_layout = header, mmpose_layout
        self.frames, self.writer, self.tmp = [], None, None
        self.stream_path = json_path + 'l'
        if osp.lexists(self.stream_path):
            os.unlink(self.stream_path)  # a link or a previous run's stream: never followed
        fd = os.open(self.stream_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.stream = os.fdopen(fd, 'w')
        self._line(header)

    def _line(self, obj):
        self.stream.write(json.dumps(obj, allow_nan=False) + '\n')
        self.stream.flush()

    def add(self, vis: np.ndarray, frame: dict):
        if self.writer is None:
            self.tmp = _temporary(self.video_path, suffix='.part.mp4')
            self.writer = self._open_writer(self.tmp, (vis.shape[1], vis.shape[0]))
        with signals_deferred():  # a frame is in the video and the JSON, or in neither
            self.writer.write(vis)
            self._line(frame)
            self.frames.append(frame)

    def _open_writer(self, path, size):
        """H.264 (avc1), which browsers play, where this OpenCV build encodes it; else
        MPEG-4 part 2 (mp4v), with a note."""
        for fourcc in ([VideoOutput.fourcc] if VideoOutput.fourcc else ['avc1', 'mp4v']):
            level = cv2.getLogLevel()
            cv2.setLogLevel(0)  # silent: a missing encoder is said below
            try:
                writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), self.fps,
                                         size)
            finally:
                cv2.setLogLevel(level)
            if writer.isOpened():
                if VideoOutput.fourcc is None and fourcc == 'mp4v':
                    print_log('note: this OpenCV build cannot encode H.264 (avc1); videos are '
                              'written as MPEG-4 part 2 (mp4v), which most browsers do not '
                              'play (re-encode with: ffmpeg -i in.mp4 -c:v libx264 out.mp4)',
                              logger='current', level=logging.WARNING)
                VideoOutput.fourcc = fourcc
                return writer
            writer.release()
        raise InputError(f'{self.video_path}: OpenCV cannot write an mp4 video here')

    def close(self, error: Optional[str] = None):
        """Finalise: the video and JSON of the finished frames (none: nothing is
        replaced)."""
        with signals_deferred():
            self.stream.close()
            if self.writer is not None:
                self.writer.release()
            if not self.frames:
                for path in (self.tmp, self.stream_path):
                    if path:
                        _remove(path)
                return
            os.replace(self.tmp, self.video_path)
            if self.mmpose_layout:
                out = dict(self.header, instance_info=self.frames)
            else:
                out = dict(self.header, frames=self.frames)
            out['complete'] = error is None
            if error is not None:
                out['error'] = error
            write_atomic(self.json_path, to_json(out))
            _remove(self.stream_path)
