"""Where results go: overlay video or images, class-id PNGs, JSON lines, a window with a HUD.

Every sink is opened before the first frame is processed, so an unwritable path fails at start-up,
not after minutes of work. Sinks are equals: the pipeline gives each frame to every sink's `write`, then
records the sinks' time, then calls every `frame_done`, so a sink that reports timings (the JSON lines)
sees all of them whatever its place in the list.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, cast

import cv2
import numpy as np

from ..core.constants import DEFAULT_H264_PRESET, H264_PRESETS
from ..core.errors import RtsegError
from .atomic_write import write_file_atomically
from . import yuv
from .frame import FrameRecord
from .schema import frame_record, header_record
from .stats import RateMeter

VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


class Sink:
    """Where finished frames go. Override what the sink needs; the defaults do nothing."""

    # True: the sink works from a frame's `overlay_i420` (or `overlay` when that is None) or needs no pixels, so
    # a run may keep frames in YUV 4:2:0 (runtime/yuv.py); False: it reads `overlay` (BGR) and `image`
    takes_i420 = False

    def attach(self, pipeline) -> None:
        """Called once by the pipeline that will feed this sink (a live view reads its counts)."""

    def write(self, rec: FrameRecord) -> None:
        """Take the frame's results (timed as the frame's "sink" stage)."""

    def frame_done(self, rec: FrameRecord) -> None:
        """Called once every sink has written the frame and `rec.ms` is complete."""

    def close(self) -> None:
        """Finish the output (a video's index, a file's last bytes); called once, also after an error."""

    def describe(self) -> str | None:
        """What this sink wrote and where, for the run's summary; None for sinks that write no file."""
        return None


def _bgr_overlay(rec: FrameRecord) -> np.ndarray:
    """The frame's overlay in BGR, for a sink that reads it: a run keeps frames in I420 only when every sink
    takes them (`takes_i420`), and even then a frame whose `overlay_i420` is None has its overlay in BGR."""
    return cast(np.ndarray, rec.overlay)


def require_writable(path: Path, what: str) -> None:
    """The folder `path` goes in exists and can be written, or a one-line error now, before any work."""
    path = Path(path)
    parent = path if path.is_dir() else path.parent
    if not parent.exists():
        raise RtsegError(f"cannot write {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise RtsegError(f"cannot write {what} {path}: folder {parent} is not writable")


class VideoSink(Sink):
    """Overlay frames into a video file; frames of another size (image folders) are resized to the first."""

    def __init__(self, path: str | Path, fps: float, frame_size: tuple[int, int]):
        self.path = Path(path)
        fourcc = VIDEO_FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise RtsegError(f"unsupported output type {self.path.suffix!r} (use {', '.join(VIDEO_FOURCC)} or an image suffix)")
        require_writable(self.path, "video")
        if self.path.is_dir():
            raise RtsegError(f"cannot write video {self.path}: it is a folder")
        self.size = frame_size
        self.fourcc, self.frames = fourcc, 0
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*fourcc), fps, frame_size)
        if not self.writer.isOpened():
            raise RtsegError(f"cannot write video {self.path} (OpenCV could not open a {fourcc} writer there)")

    def write(self, rec: FrameRecord) -> None:
        img = _bgr_overlay(rec)
        if (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_LINEAR)
        self.writer.write(img)
        self.frames += 1

    def close(self) -> None:
        self.writer.release()  # writes the container index: the file is playable after this
        self._check_written()

    def _check_written(self) -> None:
        """OpenCV's writer reports no write error (a full disk, a file size limit): read the finished file's
        header back, and a file that holds fewer frames than were written is an error, not a success."""
        if not self.frames:
            return
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        held = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if held < self.frames - max(2, 0.01 * self.frames):  # some containers estimate their count
            raise RtsegError(
                f"cannot write video {self.path}: it holds {held} of the {self.frames} frames written "
                "(a full disk or a file size limit?); with PyAV installed (pip install av) an H.264 MP4 plays "
                "up to a failure"
            )

    def describe(self) -> str:
        return f"overlay video: {self.path} ({self.frames} frames, {self.size[0]}x{self.size[1]}, OpenCV {self.fourcc})"


def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def to_i420(img_bgr: np.ndarray) -> np.ndarray:
    """BGR -> planar YUV 4:2:0 (BT.601, limited range: what the encoder takes) in one OpenCV pass.

    Handing PyAV a BGR frame costs 1.3 ms at 768x576 here (its copy into an AVFrame, then swscale's
    conversion), this 0.5 ms. Luma agrees with swscale's to one level; chroma is the top-left pixel's of
    each 2x2 block instead of their average, so a colour edge at an odd row or column moves by a pixel."""
    return cv2.cvtColor(img_bgr, cv2.COLOR_BGR2YUV_I420)


def require_h264_preset(preset: str) -> str:
    """`preset` when it is one of x264's presets rtseg offers, else a one-line error."""
    if preset not in H264_PRESETS:
        raise RtsegError(f"unknown H.264 preset {preset!r} (use one of {', '.join(H264_PRESETS)})")
    return preset


class PyAVVideoSink(Sink):
    """Overlay frames into MP4, MOV or MKV through PyAV (the `video` extra: FFmpeg inside its wheels), from I420.

    MP4 files are written fragmented (a fragment per keyframe): a run killed without warning still leaves a
    playable file up to its last fragment, and browsers stream it as it grows. The encoder runs on one
    thread, so encoding takes a couple of ms of one core, not both cores. Python owns the file and FFmpeg
    writes through it, so a failed write (a full disk) raises out of `mux()` here: FFmpeg's own file writer
    keeps such errors to itself. Frames come as I420 overlays (`takes_i420`: runtime/yuv.py) or BGR ones,
    converted in one OpenCV pass. Subclasses choose the encoder (`_add_stream`).
    """

    CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
    takes_i420 = True
    kind = "video"  # for messages: the encoder's name
    settings = ""  # and what the summary adds about its settings

    def __init__(self, path: str | Path, fps: float, frame_size: tuple[int, int]):
        import av
        from fractions import Fraction

        self.path = Path(path)
        require_writable(self.path, "video")
        if self.path.is_dir():
            raise RtsegError(f"cannot write video {self.path}: it is a folder")
        # 4:2:0 chroma needs even sizes: an odd-sized frame is scaled one pixel smaller (a 1-pixel side up)
        self.size = tuple(max(2, side - side % 2) for side in frame_size)
        fmt = self.CONTAINERS[self.path.suffix.lower()]
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if fmt != "matroska" else {}
        try:
            self.file = open(self.path, "wb")
        except OSError as e:
            raise RtsegError(f"cannot write video {self.path}: {e.strerror or e}") from e
        try:
            self.container = av.open(self.file, "w", format=fmt, options=options)
            rate = Fraction(fps).limit_denominator(1001)
            if rate.numerator > 65535:  # MPEG-4's time base stops there (119.88 FPS = 120000/1001): 11988/100
                rate = Fraction(round(fps * 100), 100) if fps < 655 else Fraction(round(fps))
            self.stream = self._add_stream(self.container, rate, fps)
        except (av.FFmpegError, ValueError, OSError) as e:
            self.file.close()
            raise RtsegError(f"cannot write video {self.path} with PyAV's {self.kind} encoder ({e})") from e
        self.stream.width, self.stream.height = self.size
        self.stream.pix_fmt = "yuv420p"
        self._av, self.frames = av, 0

    def _add_stream(self, container, rate, fps: float):
        raise NotImplementedError

    def write(self, rec: FrameRecord) -> None:
        i420 = getattr(rec, "overlay_i420", None)
        if i420 is None or yuv.frame_size(i420) != self.size:
            img = _bgr_overlay(rec) if i420 is None else yuv.to_bgr(i420)  # a frame of another size: the BGR way
            if (img.shape[1], img.shape[0]) != self.size:
                img = cv2.resize(img, self.size, interpolation=cv2.INTER_LINEAR)
            i420 = to_i420(img)
        self._encode(self._av.VideoFrame.from_ndarray(i420, format="yuv420p"))
        self.frames += 1

    def _encode(self, frame) -> None:
        """Encode `frame` (None: flush) and write what comes out; an encoder's or a write's error in one line."""
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except (self._av.FFmpegError, OSError, ValueError) as e:
            raise RtsegError(
                f"cannot write video {self.path}: {getattr(e, 'strerror', None) or e} (it plays up to its last complete fragment)"
            ) from e

    def close(self) -> None:
        try:
            self._encode(None)  # the frames the encoder still holds
        finally:
            try:
                self.container.close()
            except (self._av.FFmpegError, OSError) as e:
                raise RtsegError(f"cannot write video {self.path}: {getattr(e, 'strerror', None) or e}") from e
            finally:
                self.file.close()

    def describe(self) -> str:
        return f"overlay video: {self.path} ({self.frames} frames, {self.size[0]}x{self.size[1]}, {self.kind} via PyAV{self.settings})"


class H264VideoSink(PyAVVideoSink):
    """Browser-playable H.264 (FFmpeg's libx264) at x264 `preset` (one of H264_PRESETS), crf 23, a keyframe
    every 2 s."""

    kind = "H.264"

    def __init__(self, path: str | Path, fps: float, frame_size: tuple[int, int], preset: str = DEFAULT_H264_PRESET):
        self.preset = require_h264_preset(preset)
        self.settings = f", x264 {preset}"
        super().__init__(path, fps, frame_size)

    def _add_stream(self, container, rate, fps: float):
        stream = container.add_stream("libx264", rate=rate)
        stream.options = {"preset": self.preset, "crf": "23", "threads": "1", "g": str(max(1, round(2 * fps)))}
        return stream


class Mpeg4VideoSink(PyAVVideoSink):
    """MPEG-4 Part 2 ('mp4v'), what OpenCV's writer makes, by the same FFmpeg encoder at OpenCV's settings (bit
    rate 1.5 x rate x pixels, a keyframe every 12 frames, quantiser 3 at best): files of the same size as
    OpenCV's, but fed I420 without a conversion, and fragmented (playable after a kill)."""

    kind = "MPEG-4 Part 2 (mp4v)"

    def _add_stream(self, container, rate, fps: float):
        stream = container.add_stream("mpeg4", rate=rate)
        cc = stream.codec_context
        cc.bit_rate = cc.bit_rate_tolerance = int(min(1.5 * fps * self.size[0] * self.size[1], 2**31 - 1))
        cc.gop_size, cc.qmin, cc.thread_count = 12, 3, 1
        return stream


def open_video_sink(
    path: str | Path, fps: float, frame_size: tuple[int, int], codec: str = "auto", h264_preset: str = DEFAULT_H264_PRESET
) -> Sink:
    """`auto`: H.264 through PyAV for MP4/MOV/MKV when PyAV is installed, else OpenCV's writer (MPEG-4 Part 2
    in MP4, which many browsers will not play: the summary says which was used). `h264` insists on PyAV.
    `mp4v`: MPEG-4 Part 2, through PyAV when it is installed (Mpeg4VideoSink), else OpenCV's writer.
    `h264_preset`: x264's speed/size trade (H264_PRESETS) whenever H.264 is written."""
    h264_container = Path(path).suffix.lower() in H264VideoSink.CONTAINERS
    if codec == "h264":
        if not h264_container:
            raise RtsegError(f"--codec h264 writes {', '.join(H264VideoSink.CONTAINERS)} files, not {Path(path).suffix!r}")
        if not pyav_available():
            raise RtsegError("--codec h264 needs PyAV, which this install lacks: pip install av")
        return H264VideoSink(path, fps, frame_size, h264_preset)
    if codec == "auto" and h264_container and pyav_available():
        return H264VideoSink(path, fps, frame_size, h264_preset)
    if VIDEO_FOURCC.get(Path(path).suffix.lower()) == "mp4v" and pyav_available():
        return Mpeg4VideoSink(path, fps, frame_size)  # the same codec, from I420 (runtime/yuv.py)
    return VideoSink(path, fps, frame_size)


class ImageSink(Sink):
    """Overlay frames as images: one file for a single frame, `<stem>_<label><suffix>` otherwise."""

    def __init__(self, path: str | Path, single: bool):
        self.path = Path(path)
        require_writable(self.path, "image")
        self.single = single
        self.written: list[Path] = []

    def write(self, rec: FrameRecord) -> None:
        target = self.path if self.single else self.path.with_name(f"{self.path.stem}_{rec.label}{self.path.suffix}")
        ok, encoded = cv2.imencode(target.suffix, _bgr_overlay(rec))
        if not ok:
            raise RtsegError(f"cannot encode image {target}")
        # through a temporary name: a failed write (a full disk) leaves the file that was there before
        write_file_atomically(target, encoded.tobytes(), "image")
        self.written.append(target)

    def describe(self) -> str:
        if self.single or len(self.written) == 1:
            return f"overlay image: {self.written[0] if self.written else self.path}"
        return f"overlay images: {len(self.written)} files {self.path.parent / (self.path.stem + '_*' + self.path.suffix)}"


class MaskSink(Sink):
    """One single-channel PNG of class ids per frame, at frame size (the format CamVid labels use)."""

    takes_i420 = True  # class ids only

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RtsegError(f"cannot create mask folder {self.folder}: {e.strerror}") from e
        if not os.access(self.folder, os.W_OK):
            raise RtsegError(f"cannot write masks to {self.folder}: not writable")
        self.frames = 0

    def write(self, rec: FrameRecord) -> None:
        if rec.mask is None:
            return
        # fastest PNG compression: class maps compress well anyway and this runs per frame
        target = self.folder / f"{rec.label}.png"
        # encoded here and written by Python, which reports a short write (a full disk); imwrite does not
        ok, png = cv2.imencode(".png", rec.mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise RtsegError(f"cannot encode mask {target}")
        # through a temporary name: a mask that replaces its image (--overwrite) is never half written
        write_file_atomically(target, png.tobytes(), "mask")
        self.frames += 1

    def describe(self) -> str:
        return f"class-id masks: {self.frames} PNGs in {self.folder}/ (ids named in {self.folder / 'classes.json'})"


class JsonLinesSink(Sink):
    """A header line (`{"header": {...}}`: rtseg and schema versions, model, classes and their colours, box
    classes, source), then one JSON object per frame: index, time, per-stage ms, class pixel shares, boxes,
    model (runtime/schema.py)."""

    takes_i420 = True  # no pixels

    def __init__(
        self,
        path: str | Path,
        class_names: tuple[str, ...],
        det_classes: tuple[str, ...] = (),
        source: str | None = None,
        palette_rgb: list | None = None,
    ):
        self.path = Path(path)
        self.source = source  # the input's name, credentials removed, on every line
        self.palette_rgb = palette_rgb
        require_writable(self.path, "JSON")
        try:
            self.file = open(self.path, "w")
        except OSError as e:
            raise RtsegError(f"cannot write JSON {self.path}: {e.strerror}") from e
        self.class_names = class_names
        self.det_classes = det_classes
        self.lines = 0

    def frame_done(self, rec: FrameRecord) -> None:
        # not in write(): only now does rec.ms hold the time of every sink, this one's place aside
        size = (
            (rec.image.shape[1], rec.image.shape[0]) if rec.image is not None else yuv.frame_size(cast(np.ndarray, rec.i420))
        )  # a frame not in BGR is in I420
        if self.lines == 0:  # with the first frame: a run that wrote no frame leaves no file at all
            self._write(header_record(rec.model, self.class_names, self.palette_rgb, self.det_classes, self.source))
        line = frame_record(
            rec.index,
            rec.source_time,
            rec.model,
            rec.ms,
            self.class_names,
            rec.shares,
            self.det_classes,
            rec.detections,
            rec.file,
            rec.event,
            inferred=rec.inferred,
            source=self.source,
            size=size,
        )
        self._write(line)
        self.lines += 1

    def _write(self, line: dict) -> None:
        try:
            self.file.write(json.dumps(line) + "\n")
        except OSError as e:
            raise RtsegError(f"cannot write JSON {self.path}: {e.strerror or e}") from e

    def close(self) -> None:
        try:
            self.file.close()  # flushes: a full disk shows here too
        except OSError as e:
            raise RtsegError(f"cannot write JSON {self.path}: {e.strerror or e}") from e

    def describe(self) -> str:
        return f"JSON lines: {self.path} ({self.lines} frames; schema rtseg/schemas/frame.schema.json)"


def display_available() -> bool:
    """Whether a window can be shown: on Linux that needs an X11 or Wayland display."""
    if os.name == "nt" or os.uname().sysname == "Darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def draw_hud(img: np.ndarray, lines: list[str]) -> None:
    """Text block in the top-left corner on a dark band, readable over any overlay."""
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    line_h = 18
    width = max(cv2.getTextSize(t, font, scale, thick)[0][0] for t in lines) + 12
    band = img[: line_h * len(lines) + 8, :width]
    band //= 3  # darken in place; cheaper than a blended rectangle
    for i, t in enumerate(lines):
        cv2.putText(img, t, (6, 18 + i * line_h), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


class WindowSink(Sink):
    """A window showing the overlay with a HUD; 'q' or Esc, or closing the window, stops the run.

    The HUD is the window's own business: it measures the rate frames reach it, and reads the model,
    backend, stage times and model switches from the frames themselves.
    """

    NOTE_S = 3.0  # how long "switched to X" stays on screen

    def __init__(self, title: str, request_stop: Callable[[], None]):
        self.title = title
        self.request_stop = request_stop
        self.meter = RateMeter(1.0)
        self._last_sink_ms = 0.0  # a frame's own sink time is known only after it is shown
        self._note: tuple[str, float] | None = None  # a message and the perf_counter() time it expires
        self._sized = False
        # resizable, aspect kept, no toolbar: the picture is the interface
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)

    def hud_lines(self, rec: FrameRecord) -> list[str]:
        """Rate, model and backend; the frame's stage times (the sink time of the frame before); a switch note."""
        now = time.perf_counter()
        if rec.event and "switch" in rec.event:
            self._note = (f"switched to {rec.event['switch']['to']}", now + self.NOTE_S)
        if rec.event and "reconnect" in rec.event:
            gap = rec.event["reconnect"]
            self._note = (f"source back after {gap['seconds']:.1f} s ({gap['attempts']} attempt(s))", now + self.NOTE_S)
        ms = {s: rec.ms.get(s, 0.0) for s in ("capture", "preprocess", "infer", "postprocess")}
        assert rec.slot is not None, "every frame shown was preprocessed by a slot"
        lines = [
            f"{self.meter.fps:5.1f} FPS  {rec.model}  [{rec.slot.backend.name}]"
            + ("" if rec.temporal is None else "  key" if rec.inferred else "  propagated"),
            "cap {capture:.1f}  pre {preprocess:.1f}  inf {infer:.1f}  post {postprocess:.1f}  out {sink:.1f} ms".format(
                **ms, sink=self._last_sink_ms
            ),
        ]
        if self._note and now < self._note[1]:
            lines.append(self._note[0])
        return lines

    def write(self, rec: FrameRecord) -> None:
        overlay = _bgr_overlay(rec)
        if not self._sized:
            cv2.resizeWindow(self.title, overlay.shape[1], overlay.shape[0])
            self._sized = True
        img = overlay.copy()  # the overlay is shared with the other sinks: the HUD is for the window only
        draw_hud(img, self.hud_lines(rec))
        cv2.imshow(self.title, img)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.request_stop()

    def frame_done(self, rec: FrameRecord) -> None:
        self.meter.tick()
        self._last_sink_ms = rec.ms.get("sink", 0.0)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
