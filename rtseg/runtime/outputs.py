"""Which sinks a run asks for, opened before the first frame, and the rule that no output destroys an input."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.constants import IMAGE_SUFFIXES
from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo
from .sinks import ImageSink, JsonLinesSink, MaskSink, Sink, WindowSink, display_available, open_video_sink
from .sources import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkRequest:
    """Where a run puts its results: an overlay file, mask PNGs, JSON lines, a window."""

    output: str | None = None
    save_masks: str | None = None
    json_lines: str | None = None
    show: bool = True
    quiet: bool = False
    codec: str = "auto"                     # video: auto (H.264 via PyAV when installed), h264, or mp4v (OpenCV)
    serve: str | None = None                # HOST:PORT for the live view (MJPEG, page, stats.json)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(request: SinkRequest, source: Source) -> None:
    """An output may not be an input file, and masks may not be written into a folder of input images."""
    inputs = [Path(f) for f in source.files]
    for what, path in (("--output", request.output), ("--json", request.json_lines)):
        if path and any(_same_file(Path(path), f) for f in inputs):
            raise RtsegError(f"{what} {path} is an input of this run: it would be overwritten")
    out = Path(request.output) if request.output else None
    if out is not None and out.suffix.lower() in IMAGE_SUFFIXES and len(inputs) > 1:
        # several overlays are written as <stem>_<label><suffix> beside --output: none may be an input
        clash = [f for f in inputs if f.name.startswith(out.stem + "_") and f.suffix.lower() == out.suffix.lower()
                 and _same_file(f.parent, out.parent)]
        if clash:
            raise RtsegError(f"--output {out} would write {out.stem}_*{out.suffix} over input {clash[0]}")
    if request.save_masks:
        folder = Path(request.save_masks)
        if any(_same_file(folder, f.parent) for f in inputs if f.suffix.lower() in IMAGE_SUFFIXES):
            raise RtsegError(f"--save-masks {folder} holds this run's input images: masks would overwrite them")


def write_classes_json(folder: Path, info: ModelInfo) -> Path:
    """`classes.json` beside the masks: class id -> name and colour, so the PNGs' values can be read (a mask
    pixel holds the id of the class the model gave it, 0 to len(classes) - 1)."""
    path = folder / "classes.json"
    doc = {"model": info.name,
           "classes": [{"id": i, "name": n, "rgb": list(info.palette_rgb[i]) if i < len(info.palette_rgb) else None}
                       for i, n in enumerate(info.classes)]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def build_sinks(request: SinkRequest, source: Source, info: ModelInfo, request_stop: Callable[[], None]) -> list[Sink]:
    """The sinks the request asks for, opened now (an unwritable path fails before any work); when one
    cannot open, those already open are closed again."""
    refuse_overwriting_inputs(request, source)
    if request.save_masks and info.task == "det":
        raise RtsegError(f"--save-masks: model {info.name} predicts boxes only, it has no class map")
    sinks: list[Sink] = []
    try:
        _open_sinks(request, source, info, request_stop, sinks)
    except BaseException:
        for s in sinks:
            s.close()
        raise
    return sinks


def _open_sinks(request: SinkRequest, source: Source, info: ModelInfo, request_stop: Callable[[], None],
                sinks: list[Sink]) -> None:
    if request.output:
        out = Path(request.output)
        if out.suffix.lower() in IMAGE_SUFFIXES:
            sinks.append(ImageSink(out, single=source.frame_count == 1))
        else:
            size = source.frame_size or (info.input_size[1], info.input_size[0])
            sinks.append(open_video_sink(out, source.fps or 30.0, size, request.codec))
    if request.save_masks:
        masks = MaskSink(request.save_masks)
        write_classes_json(masks.folder, info)
        sinks.append(masks)
    if request.show:
        if display_available():
            try:
                sinks.append(WindowSink(f"rtseg - {info.name}", request_stop))
            except Exception as e:  # OpenCV built without GUI support, display refused...
                log.warning(f"rtseg: no window ({e.__class__.__name__}); running headless")
        elif not request.quiet:
            log.info("rtseg: no display found; running headless (--no-show)")
    if request.json_lines:
        sinks.append(JsonLinesSink(request.json_lines, info.classes, info.det_classes))
    if request.serve:
        from .serve import LiveView

        view = LiveView(request.serve)
        log.info(f"rtseg: live view on {view.url} (MJPEG at {view.url}stream.mjpg, numbers at {view.url}stats.json)")
        sinks.append(view)


def describe_outputs(sinks: list[Sink]) -> list[str]:
    """One line per file or folder the run wrote, for the summary."""
    return [line for s in sinks if (line := s.describe())]
