"""Frame sources behind one protocol: video files, images (file, folder, glob), cameras and streams.

`open_source` is the one place that decides what kind of input a string names, so the pipeline never
cares. Live sources (camera, stream) are marked `live`: the pipeline then keeps only the newest frame.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Protocol, cast

import cv2
import numpy as np

from ..core.constants import IMAGE_SUFFIXES
from ..core.errors import RtsegError
from .yuv import I420Reader

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
OPEN_TIMEOUT_MS = 8000
STALL_S = 5.0  # a live stream that delivers no frame for this long has stalled: reconnect
BACKOFF_S = (0.5, 8.0)  # first wait before reconnecting, and the cap of its doubling


class Captured(NamedTuple):
    """What a source's `read` returns: a BGR frame (or, from a source asked for them, an I420 one) and where it
    came from."""

    frame: np.ndarray | None  # None after `decode_to_i420()`: the frame is then `i420`
    time: float | None  # seconds: stream time (files), wall clock (live); None for still images
    label: str  # unique within the run: names its per-frame files (frame number, image name)
    file: str | None = None  # the image file it was read from (image sources)
    event: dict | None = None  # something the frame's JSON line should say (e.g. the stream came back)
    i420: np.ndarray | None = None  # the frame in YUV 4:2:0 (runtime/yuv.py), from sources asked for it


class Source(Protocol):
    # read-only to its users (so properties here): a source may hold a narrower type, or pass its inner one's on
    @property
    def name(self) -> str: ...
    @property
    def live(self) -> bool: ...  # True: frames arrive in real time and stale ones may be dropped
    @property
    def fps(self) -> float | None: ...  # nominal rate, when the container or device reports one
    @property
    def frame_count(self) -> int | None: ...  # number of frames, when known (files)
    @property
    def frame_size(self) -> tuple[int, int] | None: ...  # (w, h) of the first frame decoded: it sizes a video output
    @property
    def skipped(self) -> list[str]: ...  # inputs not decoded and passed over (grows while reading)
    @property
    def files(self) -> list[Path]: ...  # the input files it reads (none if live): no output may replace one

    def read(self) -> Captured | None:
        """The next frame (a `Captured`, or a plain (frame, time, label) tuple); None at the end of the input."""
        ...

    def close(self) -> None: ...

    # Optional: `interrupt()`, called from another thread when the run stops, makes a source that waits
    # (a reconnect's back-off) give up at once; `gaps` and `lost` report a live source's outages;
    # `decode_to_i420()`, called before the first read, asks for frames in YUV 4:2:0 and says if they will be.


def ask_for_i420(source) -> bool:
    """`source.decode_to_i420()` for the sources that have it (an optional part of `Source`); False otherwise."""
    ask = getattr(source, "decode_to_i420", None)
    return bool(ask()) if ask else False


class VideoSource:
    """A video file, a camera or a network stream, through OpenCV's VideoCapture."""

    def __init__(self, cap: cv2.VideoCapture, name: str, live: bool):
        self.cap, self.name, self.live = cap, name, live
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = n if (not live and n > 0) else None
        self.announced = n if n > 0 else None  # a file served over a URL says its length; a camera does not
        self._index = 0
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            kind = "stream" if live else "video"
            raise RtsegError(f"{name}: no frame could be decoded (not a {kind}, unsupported codec, or empty)")
        self._pending: np.ndarray | None = first
        self.frame_size = (first.shape[1], first.shape[0])
        self.skipped: list[str] = []  # one input: an undecodable packet ends it rather than being skipped
        self.files: list[Path] = [] if live else [Path(name)]
        self._i420: I420Reader | None = None
        self.reopenable = True  # a file PyAV may open again from its start (not a pipe)
        self.owned_fd: int | None = None

    def decode_to_i420(self) -> bool:
        """From now on frames come as YUV 4:2:0 (`Captured.i420`), decoded by PyAV, when this is a file whose frames
        PyAV gives so (runtime/yuv.py); only before the first read. Says whether they will."""
        if self.live or not self.reopenable or self._index or self._pending is None or self._i420 is not None:
            return self._i420 is not None
        w, h = self.frame_size
        self._i420 = I420Reader.open(Path(self.name), self._pending, one_thread=w * h <= ONE_THREAD_DECODE_PIXELS)
        if self._i420 is None:
            return False
        self.cap.release()  # the frame count, rate and size stay OpenCV's, read at open
        self._pending = None
        return True

    def read(self) -> Captured | None:
        frame = i420 = None
        if self._i420 is not None:
            if (i420 := self._i420.read()) is None:
                return None
        elif self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                return None  # end of file, or the first undecodable packet of a truncated file
        self._index += 1
        if self.live:
            t = time.time()
        elif self.fps:
            t = (self._index - 1) / self.fps
        elif self._i420 is not None:  # a file without a rate: its frames' own times, as OpenCV's position gives them
            t = self._i420.time if self._i420.time is not None else 0.0
        else:
            t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        return Captured(frame, t, f"{self._index - 1:06d}", i420=i420)

    def close(self) -> None:
        self.cap.release()
        if self._i420 is not None:
            self._i420.close()
        if self.owned_fd is not None:  # a pipe's descriptor, which FFmpeg read but does not close
            os.close(self.owned_fd)
            self.owned_fd = None


def _label(path: Path, level: int) -> str:
    """Level 0: the stem; 1: stem and suffix; 2 and up: that many folders more, joined by '__'."""
    if level == 0:
        return path.stem
    name = f"{path.stem}_{path.suffix[1:]}" if path.suffix else path.stem
    folders = [f for f in path.parent.parts[len(path.parent.parts) - (level - 1) :] if f.strip("/")] if level > 1 else []
    return "__".join([*folders, name])


def unique_labels(paths: list[Path]) -> list[str]:
    """A name per image for its output files: the stem, widened only where names repeat (a.png and a.jpg:
    a_png, a_jpg; dir1/a.png and dir2/a.png: dir1__a_png, dir2__a_png), so no output overwrites another."""
    levels, labels = [0] * len(paths), [p.stem for p in paths]
    for _ in range(2 + max((len(p.parts) for p in paths), default=0)):
        counts = Counter(labels)
        clashing = [i for i, lab in enumerate(labels) if counts[lab] > 1]
        if not clashing:
            return labels
        for i in clashing:
            levels[i] += 1
            labels[i] = _label(paths[i], levels[i])
    counts, taken = Counter(labels), set(labels)  # the same path given twice: number the repeats
    out = []
    for i, lab in enumerate(labels):
        if counts[lab] > 1:
            n = i
            while f"{lab}_{n}" in taken:
                n += len(labels)
            lab = f"{lab}_{n}"
            taken.add(lab)
        out.append(lab)
    return out


class ImageSource:
    """A single image, a folder of images or a glob, in sorted order.

    Still images have no stream time (`Captured.time` is None); `fps` only paces a video made of them.
    """

    live = False

    def __init__(self, paths: list[Path], name: str, fps: float = 30.0):
        self.paths, self.name, self.fps = paths, name, fps
        self.files = paths
        self.labels = unique_labels(paths)
        self.frame_count = len(paths)
        self._i = 0
        self.skipped: list[str] = []
        first = cv2.imread(str(paths[0]), cv2.IMREAD_COLOR)
        if first is None and len(paths) == 1:
            raise RtsegError(f"{paths[0]}: cannot decode image")
        self.frame_size = (first.shape[1], first.shape[0]) if first is not None else None

    def read(self) -> Captured | None:
        while self._i < len(self.paths):
            path, label = self.paths[self._i], self.labels[self._i]
            self._i += 1
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                self.skipped.append(str(path))  # not an image: nothing to segment, reported in the summary
                continue
            if self.frame_size is None:
                self.frame_size = (img.shape[1], img.shape[0])
            return Captured(img, None, label, str(path))
        return None

    def close(self) -> None:
        pass


@contextmanager
def _quiet_opencv():
    """Silence OpenCV's own logging while probing devices: rtseg reports a failure in one line itself."""
    log = cv2.utils.logging
    old = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(old)


class LoopedSource:
    """A file source played `passes` times over (`--loop N`), frame indices continuing."""

    def __init__(self, open_again, passes: int):
        self.open_again, self.passes = open_again, passes
        self.inner = open_again()
        self.name, self.live, self.fps, self.frame_size = self.inner.name, False, self.inner.fps, self.inner.frame_size
        self.files = self.inner.files
        # the first pass's list: later passes read the same inputs, so they would only repeat its names
        self.skipped: list[str] = self.inner.skipped
        self.frame_count = self.inner.frame_count * passes if self.inner.frame_count else None
        self.done_passes, self.i = 0, 0
        self._i420 = False

    def decode_to_i420(self) -> bool:
        self._i420 = ask_for_i420(self.inner)
        return self._i420

    def read(self) -> Captured | None:
        got = self.inner.read()
        while got is None:
            self.done_passes += 1
            self.inner.close()
            if self.done_passes >= self.passes:
                return None
            self.inner = self.open_again()
            if self._i420:  # each pass as the first (a frame of the other kind would still be handled)
                self.inner.decode_to_i420()
            got = self.inner.read()
        self.i += 1
        got = Captured(*got)
        if got.file is not None:  # images: still no stream time; each pass's files named apart
            return got._replace(label=f"{got.label}_{self.done_passes}")
        return Captured(got.frame, (self.i - 1) / (self.fps or 30.0), f"{self.i - 1:06d}", i420=got.i420)

    def close(self) -> None:
        self.inner.close()


class LimitedSource:
    """The first `n` frames of another source (`--frames N`)."""

    def __init__(self, inner, n: int):
        self.inner, self.n, self.i = inner, n, 0
        self.name, self.live, self.fps, self.frame_size = inner.name, inner.live, inner.fps, inner.frame_size
        self.files = inner.files
        self.frame_count = min(n, inner.frame_count) if inner.frame_count else None

    @property
    def skipped(self) -> list[str]:
        return self.inner.skipped

    # a live source's optional parts pass through (a reconnecting camera limited to N frames)
    @property
    def gaps(self) -> list[dict]:
        return getattr(self.inner, "gaps", [])

    @property
    def lost(self) -> bool:
        return getattr(self.inner, "lost", False)

    def interrupt(self) -> None:
        getattr(self.inner, "interrupt", lambda: None)()

    def decode_to_i420(self) -> bool:
        return ask_for_i420(self.inner)

    def read(self) -> Captured | None:
        if self.i >= self.n:
            return None
        self.i += 1
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


class PacedSource:
    """A file played at its own frame rate, as if it were a camera (`--realtime`).

    Frames are released on the file's clock; when processing falls behind, the pipeline's newest-frame
    policy drops the stale ones, exactly as with a live source.
    """

    live = True

    def __init__(self, inner: Source):
        self.inner = inner
        self.name = f"{inner.name} (real time)"
        self.fps = inner.fps or 30.0
        self.frame_count = None
        self.frame_size = inner.frame_size
        self.files = inner.files
        self._t0: float | None = None
        self._i = 0

    @property
    def skipped(self) -> list[str]:
        return self.inner.skipped

    def decode_to_i420(self) -> bool:
        return ask_for_i420(self.inner)

    def read(self) -> Captured | None:
        got = self.inner.read()
        if got is None:
            return None
        self._t0 = self._t0 or time.perf_counter()
        wait = self._t0 + self._i / self.fps - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self._i += 1
        return got

    def close(self) -> None:
        self.inner.close()


def _open_capture(target: str | int, api: int, timeout: bool, threads: int | None = None) -> cv2.VideoCapture:
    # the read timeout is the stall watchdog: a stream silent for STALL_S returns no frame, and is reconnected
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(STALL_S * 1000)] if timeout else []
    if threads:
        params += [cv2.CAP_PROP_N_THREADS, threads]
    with _quiet_opencv():
        return cv2.VideoCapture(target, api, params)


# Up to this many pixels a frame, a file is decoded on one thread: FFmpeg's frame threads cost more CPU than
# they save (vtest.avi, 768x576 MPEG-4: 0.52 ms a frame on one thread, 0.79 ms of CPU on two), and the
# pipeline's other stages need that core. Larger videos keep FFmpeg's threads, where decoding is the limit.
ONE_THREAD_DECODE_PIXELS = 1280 * 720


def _open_video_file(path: Path) -> cv2.VideoCapture:
    cap = _open_capture(str(path), cv2.CAP_FFMPEG, timeout=False, threads=1)
    pixels = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if cap.isOpened() and pixels > ONE_THREAD_DECODE_PIXELS:
        cap.release()
        cap = _open_capture(str(path), cv2.CAP_FFMPEG, timeout=False)
    return cap


def _camera_api() -> int:
    if sys.platform.startswith("linux"):
        return cv2.CAP_V4L2
    if sys.platform == "darwin":
        return cv2.CAP_AVFOUNDATION
    return cv2.CAP_ANY


def open_camera(index: int | str) -> VideoSource:
    cap = _open_capture(index, _camera_api(), timeout=False)
    if not cap.isOpened():
        raise RtsegError(f"camera {index} could not be opened (no such device, or it is busy)")
    return VideoSource(cap, f"camera {index}", live=True)


_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f") + b"\x7f"


def _looks_like_text(path: Path) -> bool:
    """Valid UTF-8 without control bytes in the first 4 KiB: no video container looks like that (raw
    formats such as y4m carry control bytes in their pixels, dark ones included)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if not head or any(b in _CONTROL for b in head):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 4  # a character cut at the 4 KiB boundary is still text
    return True


def looks_like_glob(text: str) -> bool:
    """A pattern to expand, unless a file of that very name exists (a real 'a[1].png' is no glob)."""
    return any(ch in text for ch in "*?[") and not Path(text).exists()


CAMERA_URI = re.compile(r"(?:v4l2://)?/dev/video(\d+)|(?:csi|camera)://(\d+)")  # a camera named as a SOURCE


def open_source(uri: str) -> VideoSource | ImageSource:
    """Decide what `uri` names and open it; raises RtsegError with a one-line reason when it cannot."""
    if uri.startswith(STREAM_SCHEMES):
        cap = _open_capture(uri, cv2.CAP_FFMPEG, timeout=True)
        if not cap.isOpened():
            raise RtsegError(f"cannot open stream {uri} (unreachable, refused, or not a video stream)")
        return VideoSource(cap, uri, live=True)
    m = CAMERA_URI.fullmatch(uri)
    if m:
        return open_camera(int(m.group(1) or m.group(2)))
    if looks_like_glob(uri):
        paths = sorted(Path(p) for p in glob.glob(uri) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise RtsegError(f"no images match {uri}")
        return ImageSource(paths, uri)
    path = Path(uri)
    if not path.exists():
        raise RtsegError(f"no such file or folder: {uri}")
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise RtsegError(f"folder {uri} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageSource(paths, uri)
    if not os.access(path, os.R_OK):
        raise RtsegError(f"cannot read {uri}: permission denied")
    if stat.S_ISFIFO(path.stat().st_mode):
        return _open_fifo(path, uri)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource([path], uri)
    if _looks_like_text(path):  # FFmpeg would "decode" it (as ANSI art) into a few frames
        raise RtsegError(f"{uri}: a text file, not a video")
    cap = _open_video_file(path)
    if not cap.isOpened():
        raise RtsegError(f"{uri}: not a readable video (unknown format or corrupt file)")
    return VideoSource(cap, uri, live=False)


FIFO_WAIT_S = 10.0  # how long a named pipe may go without a writer before the run gives up on it


def _open_fifo(path: Path, uri: str) -> VideoSource:
    """A named pipe (`mkfifo`; `ffmpeg ... -f matroska pipe.mkv`): read once, as a stream, never reopened.

    Opening a pipe for reading blocks until a writer opens it, forever if none comes; so it is opened in a
    thread and given up after FIFO_WAIT_S with a message. FFmpeg then reads that very descriptor (its
    `pipe:N` protocol) instead of opening the path again, which would block once a quick writer had
    already written everything and left. Formats that need seeking (MP4 with its index at the end) do
    not stream through a pipe; Matroska, MPEG-TS, AVI and MJPEG do."""
    opened: list[int] = []
    waiter = threading.Thread(target=lambda: opened.append(os.open(path, os.O_RDONLY)), daemon=True)
    waiter.start()
    waiter.join(FIFO_WAIT_S)
    if not opened:
        raise RtsegError(f"{uri}: a named pipe with no writer (waited {FIFO_WAIT_S:g} s for one to open it)")
    fd = opened[0]
    try:
        cap = _open_capture(f"pipe:{fd}", cv2.CAP_FFMPEG, timeout=False, threads=1)
        if not cap.isOpened():
            raise RtsegError(f"{uri}: not a readable video stream (unknown format, or one that needs seeking)")
        source = VideoSource(cap, uri, live=False)
    except BaseException:
        os.close(fd)
        raise
    source.reopenable = False  # what was read from a pipe is gone: no second decoder (I420) may start over
    source.owned_fd = fd
    return source


class ReconnectingSource:
    """A live source that comes back: when it ends, fails or stalls (no frame for STALL_S), it is reopened
    after a back-off that doubles from BACKOFF_S[0] to BACKOFF_S[1], up to `attempts` times in a row (None:
    forever). An outage counts as over only once RECOVERED_FRAMES frames have come again, so a source that
    opens and dies at once is still lost in the end. Its state is running, reconnecting or lost; every outage
    is kept in `gaps` and announced on the JSON line of the first frame after it. Frames are numbered across
    gaps (no output file is written twice) and never replayed: after a gap the newest comes next. The sinks
    downstream stay open throughout, so a run keeps one output file.
    """

    live = True
    RECOVERED_FRAMES = 30

    def __init__(self, first: Source, reopen, attempts: int | None = 5, backoff: tuple[float, float] = BACKOFF_S):
        self.reopen, self.attempts, self.backoff = reopen, attempts, backoff
        self.inner: Source | None = first
        self.name, self.fps, self.frame_size = first.name, first.fps, first.frame_size
        self.frame_count: int | None = None
        self.skipped: list[str] = []
        self.files: list[Path] = []
        self.state = "running"
        self.gaps: list[dict] = []  # {"at": Unix time it went down, "seconds": down for, "attempts": tries}
        self.lost = False
        self._interrupted = threading.Event()
        self._index = 0  # frames delivered over the whole run: the labels
        self._tries = 0  # reconnect attempts since the source last streamed for a while
        self._since_reopen = 0

    def interrupt(self) -> None:
        self._interrupted.set()

    def read(self) -> Captured | None:
        event = None
        while not self._interrupted.is_set():
            got = self.inner.read() if self.inner is not None else None
            if got is not None:
                got = Captured(*got)._replace(label=f"{self._index:06d}", event=event)  # the first after a gap says so
                self._index += 1
                self._since_reopen += 1
                if self._since_reopen >= self.RECOVERED_FRAMES:
                    self._tries = 0
                return got
            if self.attempts == 0 or not self._reconnect():
                return None
            event = {"reconnect": {k: v for k, v in self.gaps[-1].items() if k != "lost"}}
        return None

    def _reconnect(self) -> bool:
        """Reopen until it works, the attempts run out (then `lost`) or the run is interrupted."""
        down, wait = time.time(), self.backoff[0]
        self.state = "reconnecting"
        if self.inner is not None:
            self.inner.close()
            self.inner = None
        while self.attempts is None or self._tries < self.attempts:
            if self._interrupted.wait(wait):  # Ctrl-C acts within this wait, not after it
                self.gaps.append(
                    {"at": round(down, 3), "seconds": round(time.time() - down, 3), "attempts": self._tries, "interrupted": True}
                )
                return False
            self._tries += 1
            try:
                self.inner = self.reopen()
            except RtsegError:
                wait = min(wait * 2, self.backoff[1])
                continue
            self.gaps.append({"at": round(down, 3), "seconds": round(time.time() - down, 3), "attempts": self._tries})
            self.state, self._since_reopen = "running", 0
            return True
        self.state, self.lost = "lost", True
        self.gaps.append({"at": round(down, 3), "seconds": round(time.time() - down, 3), "attempts": self._tries, "lost": True})
        return False

    def close(self) -> None:
        self._interrupted.set()
        if self.inner is not None:
            self.inner.close()


def open_input(
    uri: str | None = None,
    camera: int | str | None = None,
    loop: int = 1,
    frames: int | None = None,
    realtime: bool = False,
    reconnect: int | None = 5,
) -> Source:
    """A SOURCE string or a camera index, wrapped for --loop, --frames, --realtime and (live) --reconnect."""
    if (uri is None) == (camera is None):
        raise RtsegError("give either a SOURCE or --camera N")

    def open_again() -> VideoSource | ImageSource:  # the check above: without a camera, `uri` is given
        return open_camera(camera) if camera is not None else open_source(cast(str, uri))

    source: Source = open_again()
    # a URL that announces its length serves a file: it ends when it ends (reopening would replay it)
    if source.live and reconnect != 0 and getattr(source, "announced", None) is None:
        source = ReconnectingSource(source, open_again, reconnect)
    if loop > 1:
        if source.live:  # a camera always is: what loops is a `uri`
            raise RtsegError("--loop applies to files and images, not to live sources")
        source.close()
        source = LoopedSource(open_again, loop)
    if frames:
        source = LimitedSource(source, frames)
    if realtime and not source.live:
        source = PacedSource(source)
    return source


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """A frame as the pipeline wants it: (H, W, 3) uint8 BGR (greys and BGRA are converted), or a one-line error."""
    if not isinstance(frame, np.ndarray):
        raise RtsegError(f"a frame must be a numpy array (H, W, 3) of uint8 BGR, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise RtsegError(f"a frame must be uint8 BGR (as OpenCV reads it), got dtype {frame.dtype}")
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise RtsegError(f"a frame must be an (H, W, 3) BGR image, got shape {frame.shape}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        raise RtsegError(f"a frame must be an (H, W, 3) BGR image, got shape {frame.shape}")
    return frame


class ArraySource:
    """Frames already in memory: any iterable of BGR arrays (a list, a generator, another library's reader).

    A file-like source by default (every frame processed, in order); `live=True` treats the iterable as a
    camera, keeping only the newest frame when processing falls behind.
    """

    name = "frames"

    def __init__(self, frames, fps: float | None = None, live: bool = False):
        self.live, self.fps = live, fps
        self.frame_count = len(frames) if hasattr(frames, "__len__") else None
        self.skipped: list[str] = []
        self.files: list[Path] = []
        self._frames, self._i = iter(frames), 0
        # the first frame now: it sizes a video output before the run starts
        first = next(self._frames, None)
        self._pending = None if first is None else as_bgr(first)
        self.frame_size = None if self._pending is None else (self._pending.shape[1], self._pending.shape[0])

    def read(self) -> Captured | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            item = next(self._frames, None)
            if item is None:
                return None
            frame = as_bgr(item)
        self._i += 1
        t = time.time() if self.live else ((self._i - 1) / self.fps if self.fps else None)
        return Captured(frame, t, f"{self._i - 1:06d}")

    def close(self) -> None:
        close = getattr(self._frames, "close", None)  # a generator: let it run its cleanup
        if close:
            close()
