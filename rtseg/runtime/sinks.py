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
from typing import Callable

import cv2
import numpy as np

from ..core.constants import IMAGE_SUFFIXES  # noqa: F401  (the CLI picks image vs video output by it)
from ..core.errors import RtsegError
from .frame import FrameRecord
from .stats import RateMeter

VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


class Sink:
    """Where finished frames go. Override what the sink needs; the defaults do nothing."""

    def write(self, rec: FrameRecord) -> None:
        """Take the frame's results (timed as the frame's "sink" stage)."""

    def frame_done(self, rec: FrameRecord) -> None:
        """Called once every sink has written the frame and `rec.ms` is complete."""

    def close(self) -> None:
        """Finish the output (a video's index, a file's last bytes); called once, also after an error."""


def _writable_dir(path: Path, what: str) -> None:
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
        _writable_dir(self.path, "video")
        if self.path.is_dir():
            raise RtsegError(f"cannot write video {self.path}: it is a folder")
        self.size = frame_size
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), fps, frame_size)
        if not self.writer.isOpened():
            raise RtsegError(f"cannot write video {self.path} (OpenCV could not open a {fourcc} writer there)")

    def write(self, rec: FrameRecord) -> None:
        img = rec.overlay
        if (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_LINEAR)
        self.writer.write(img)

    def close(self) -> None:
        self.writer.release()  # writes the container index: the file is playable after this


class ImageSink(Sink):
    """Overlay frames as images: one file for a single frame, `<stem>_<label><suffix>` otherwise."""

    def __init__(self, path: str | Path, single: bool):
        self.path = Path(path)
        _writable_dir(self.path, "image")
        self.single = single

    def write(self, rec: FrameRecord) -> None:
        target = self.path if self.single else self.path.with_name(f"{self.path.stem}_{rec.label}{self.path.suffix}")
        if not cv2.imwrite(str(target), rec.overlay):
            raise RtsegError(f"cannot write image {target}")


class MaskSink(Sink):
    """One single-channel PNG of class ids per frame, at frame size (the format CamVid labels use)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RtsegError(f"cannot create mask folder {self.folder}: {e.strerror}") from e
        if not os.access(self.folder, os.W_OK):
            raise RtsegError(f"cannot write masks to {self.folder}: not writable")

    def write(self, rec: FrameRecord) -> None:
        if rec.mask is None:
            return
        # fastest PNG compression: class maps compress well anyway and this runs per frame
        cv2.imwrite(str(self.folder / f"{rec.label}.png"), rec.mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])


class JsonLinesSink(Sink):
    """One JSON object per frame: index, time, per-stage ms, class pixel shares, boxes, model."""

    def __init__(self, path: str | Path, class_names: tuple[str, ...], det_classes: tuple[str, ...] = ()):
        self.path = Path(path)
        _writable_dir(self.path, "JSON")
        try:
            self.file = open(self.path, "w")
        except OSError as e:
            raise RtsegError(f"cannot write JSON {self.path}: {e.strerror}") from e
        self.class_names = class_names
        self.det_classes = det_classes

    def frame_done(self, rec: FrameRecord) -> None:
        # not in write(): only now does rec.ms hold the time of every sink, this one's place aside
        line = {
            "frame": rec.index,
            "time": round(rec.source_time, 4),        # stream time (files) or capture wall clock (live)
            "wall_time": round(time.time(), 4),       # when the result was written
            "model": rec.model,
            "ms": {k: round(v, 3) for k, v in rec.ms.items()},
        }
        if rec.shares is not None:
            line["class_share"] = {n: round(float(s), 5) for n, s in zip(self.class_names, rec.shares)}
        if rec.event:
            line.update(rec.event)
        if self.det_classes:
            line["boxes"] = [{"box": [round(v, 1) for v in d.box], "score": round(d.score, 4),
                              "class": self.det_classes[d.class_id] if d.class_id < len(self.det_classes) else d.class_id}
                             for d in rec.detections]
        self.file.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self.file.close()


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
        ms = {s: rec.ms.get(s, 0.0) for s in ("capture", "preprocess", "infer", "postprocess")}
        lines = [f"{self.meter.fps:5.1f} FPS  {rec.model}  [{rec.slot.backend.name}]",
                 "cap {capture:.1f}  pre {preprocess:.1f}  inf {infer:.1f}  post {postprocess:.1f}  out {sink:.1f} ms"
                 .format(**ms, sink=self._last_sink_ms)]
        if self._note and now < self._note[1]:
            lines.append(self._note[0])
        return lines

    def write(self, rec: FrameRecord) -> None:
        if not self._sized:
            cv2.resizeWindow(self.title, rec.overlay.shape[1], rec.overlay.shape[0])
            self._sized = True
        img = rec.overlay.copy()  # the overlay is shared with the other sinks: the HUD is for the window only
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
