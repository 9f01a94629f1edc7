"""Which sinks a run asks for, opened before the first frame, and the rule that no output destroys an input."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.constants import DEFAULT_H264_PRESET, IMAGE_SUFFIXES
from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo
from ..core.redact import redact
from .http_access import ServeAccess
from .atomic_write import is_special
from .output_plan import OutputLock, check_plan, planned_outputs, same_file
from .sinks import ImageSink, JsonLinesSink, MaskSink, Sink, WindowSink, display_available, open_video_sink, require_h264_preset
from .sources import LimitedSource, Source, unique_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkRequest:
    """Where a run puts its results: an overlay file, mask PNGs, JSON lines, a window."""

    output: str | None = None
    save_masks: str | None = None
    json_lines: str | None = None
    show: bool = True
    quiet: bool = False
    codec: str = "auto"  # video: auto (H.264 via PyAV when installed), h264, or mp4v (PyAV, else OpenCV)
    h264_preset: str = DEFAULT_H264_PRESET  # x264's speed/size trade when H.264 is written
    serve: str | None = None  # HOST:PORT for the live view (MJPEG, page, stats.json)
    serve_access: ServeAccess | None = None  # the live view's token and extra Host names (http_access)
    overwrite: bool = False  # outputs may replace inputs, once the whole input has been read
    stats: str | None = None  # the run's numbers as JSON, written by the caller at the end

    def __post_init__(self) -> None:
        # checked here, not only when an H.264 file opens: a typo must not pass unseen in a run that writes mp4v
        require_h264_preset(self.h264_preset)
        if not self.serve and self.serve_access and (self.serve_access.token or self.serve_access.allow_hosts):
            raise RtsegError("--serve-token and --serve-allow-host go with --serve PORT")
        # an empty path (an unset variable) would write nothing, or into '.': said, as the command line says it
        for name in ("output", "save_masks", "json_lines", "stats"):
            if getattr(self, name) == "":
                raise RtsegError(f"{name} needs a path, got an empty one")


def refuse_overwriting_inputs(request: SinkRequest, source: Source) -> set[Path]:
    """An output may not be an input file, and masks may not be written into a folder of input images; with
    `overwrite`, the outputs that are inputs are returned instead (they are written aside and replace their
    input only once the whole input has been read: `ReplaceInputAtEnd`). What would destroy an input that is
    not read yet is refused even then."""
    inputs = [Path(f) for f in source.files]
    replaced: set[Path] = set()
    for what, path in (("--output", request.output), ("--json", request.json_lines)):
        if path and any(same_file(Path(path), f) for f in inputs):
            if not request.overwrite:
                raise RtsegError(
                    f"{what} {path} is an input of this run: it would be overwritten (--overwrite "
                    "replaces it once the run has read all of it)"
                )
            replaced.add(Path(path))
    if replaced and isinstance(source, LimitedSource):
        raise RtsegError("--overwrite with --frames would replace an input with part of it")
    out = Path(request.output) if request.output else None
    if out is not None and out.suffix.lower() in IMAGE_SUFFIXES and len(inputs) > 1:
        # several overlays are written as <stem>_<label><suffix> beside --output: none may be an input, as
        # one may be written before it is read
        clash = [
            f
            for f in inputs
            if f.name.startswith(out.stem + "_") and f.suffix.lower() == out.suffix.lower() and same_file(f.parent, out.parent)
        ]
        if clash:
            raise RtsegError(f"--output {out} would write {out.stem}_*{out.suffix} over input {clash[0]}")
    if request.save_masks:
        folder = Path(request.save_masks)
        images = [f for f in inputs if f.suffix.lower() in IMAGE_SUFFIXES]
        if any(same_file(folder, f.parent) for f in images):
            if not request.overwrite:
                raise RtsegError(
                    f"--save-masks {folder} holds this run's input images: masks would overwrite "
                    "them (--overwrite lets each image's mask replace that image alone)"
                )
            _refuse_masks_over_other_inputs(folder, images)
    return replaced


def _refuse_masks_over_other_inputs(folder: Path, images: list[Path]) -> None:
    """With --overwrite, image X's mask <label>.png may replace X itself (read before its mask is written),
    never another input, which may not have been read yet."""
    for image, label in zip(images, unique_labels(images)):
        target = folder / f"{label}.png"
        other = next((f for f in images if f != image and same_file(target, f)), None)
        if other is not None:
            raise RtsegError(
                f"--save-masks {folder}: the mask of {image.name} would overwrite input {other.name}, which may not have been read yet"
            )


def staging_path(final: Path) -> Path:
    """Where an output that replaces an input is written meanwhile: beside it (same file system, so the
    replacement is one rename), hidden, and named after the run's process."""
    return final.with_name(f".{final.stem}.rtseg-{os.getpid()}{final.suffix}")


class OutputFile(Sink):
    """A file sink wrapped by what happens to its file when it closes (the subclasses): every call is passed
    on, the frames written are counted, and the file is settled after the inner sink has closed it."""

    def __init__(self, inner: Sink):
        self.inner = inner
        self.takes_i420 = inner.takes_i420
        self.pipeline = None
        self.frames, self.failed = 0, False

    def attach(self, pipeline) -> None:
        self.pipeline = pipeline
        self.inner.attach(pipeline)

    def write(self, rec) -> None:
        try:
            self.inner.write(rec)
        except BaseException:
            self.failed = True
            raise
        self.frames += 1

    def frame_done(self, rec) -> None:
        self.inner.frame_done(rec)

    def close(self) -> None:
        try:
            self.inner.close()
        except BaseException:
            self.failed = True
            raise
        finally:
            self.settle()

    def settle(self) -> None:
        """What becomes of the file once it is closed."""

    def describe(self) -> str | None:
        return self.inner.describe()


class StagedOutput(OutputFile):
    """An output that replaces an existing file: written under a hidden temporary name beside it and renamed
    into place when it closes.

    So the file that was there stays untouched until the new one is whole; a run that wrote no frame
    leaves it as it was; and a run that failed keeps what it wrote aside, as <stem>.partial<suffix>, instead
    of replacing the old file with a broken one. (A process killed with SIGKILL cannot rename: its output
    stays at the hidden staging name, playable up to that point.) A new file needs none of this and is
    written in place (`CreatedOutput`), so it can be followed while the run goes on (`tail -f`).
    """

    def __init__(self, inner: Sink, staging: Path, final: Path):
        super().__init__(inner)
        self.staging, self.final = staging, final
        self.where: Path | None = None

    def complete(self) -> bool:
        """Whether the staged file may replace the final one."""
        return not self.failed and not (self.pipeline is not None and self.pipeline.failed)

    def settle(self) -> None:
        if not self.frames or not self.staging.exists():
            self.staging.unlink(missing_ok=True)
            return
        whole = self.complete()
        self.where = self.final if whole else self.final.with_name(f"{self.final.stem}.partial{self.final.suffix}")
        os.replace(self.staging, self.where)
        if not whole:
            log.warning(f"rtseg: {self.why_not()}: {self.final.name} is kept as it was, and the output is {self.where}")

    def why_not(self) -> str:
        return "the run failed"

    def describe(self) -> str | None:
        line = self.inner.describe()
        return line.replace(str(self.staging), str(self.where or self.final)) if line else line


class ReplaceInputAtEnd(StagedOutput):
    """An output (`--overwrite`) written to a staging file and moved over the input it replaces only when the
    pipeline has read the whole input without error; otherwise the input stays, and the output is kept
    beside it as <stem>.partial<suffix>, so nothing is lost either way."""

    def complete(self) -> bool:
        return super().complete() and self.pipeline is not None and self.pipeline.read_whole_input()

    def why_not(self) -> str:
        return "the run did not read all of it"


class CreatedOutput(OutputFile):
    """An output file that did not exist before the run: written in place, so it can be watched as it grows
    and an interrupted run leaves it playable under its own name; removed again if the run wrote no frame
    into it (no empty MP4s or JSON files from a run that decoded nothing)."""

    def __init__(self, inner: Sink, path: Path):
        super().__init__(inner)
        self.path = path

    def settle(self) -> None:
        if not self.frames:
            self.path.unlink(missing_ok=True)

    def describe(self) -> str | None:
        return self.inner.describe() if self.frames else None


def write_classes_json(folder: Path, info: ModelInfo) -> Path:
    """`classes.json` beside the masks: class id -> name and colour, so the PNGs' values can be read (a mask
    pixel holds the id of the class the model gave it, 0 to len(classes) - 1)."""
    path = folder / "classes.json"
    doc = {
        "model": info.name,
        "classes": [
            {"id": i, "name": n, "rgb": list(info.palette_rgb[i]) if i < len(info.palette_rgb) else None}
            for i, n in enumerate(info.classes)
        ],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def build_sinks(request: SinkRequest, source: Source, info: ModelInfo, request_stop: Callable[[], None]) -> list[Sink]:
    """The sinks the request asks for, opened now (an unwritable path fails before any work); when one
    cannot open, those already open are closed again."""
    replaced = refuse_overwriting_inputs(request, source)
    if request.save_masks and info.task == "det":
        raise RtsegError(f"--save-masks: model {info.name} predicts boxes only, it has no class map")
    planned = planned_outputs(request.output, request.json_lines, request.stats, request.save_masks)
    check_plan(planned, [Path(f) for f in source.files], request.overwrite)
    sinks: list[Sink] = [OutputLock(planned)] if planned else []
    try:
        _open_sinks(request, source, info, request_stop, sinks, replaced)
    except BaseException:
        for s in sinks:
            s.close()
        raise
    return sinks


@dataclass(frozen=True)
class SinkContext:
    """What opening a sink may need: the request, the source, the model, how to stop the run, and `staged`,
    which opens a file output so that it replaces an existing file only when whole (output_plan.py)."""

    request: SinkRequest
    source: Source
    info: ModelInfo
    request_stop: Callable[[], None]
    staged: Callable[[Path, Callable[[Path], Sink]], Sink]


# sink name -> opener(context) -> the sink, or None when the request does not ask for it; opened in this order.
# A new kind of output is a Sink class, a SinkRequest field and one `register_sink` function: nothing else.
SINKS: dict[str, Callable[[SinkContext], Sink | None]] = {}


def register_sink(name: str):
    def add(opener: Callable[[SinkContext], Sink | None]):
        SINKS[name] = opener
        return opener

    return add


@register_sink("output")
def _overlay_output(c: SinkContext) -> Sink | None:
    if not c.request.output:
        return None
    out = Path(c.request.output)
    if out.suffix.lower() in IMAGE_SUFFIXES:
        single = c.source.frame_count == 1  # several overlays go to <stem>_<label>: never --output itself
        return c.staged(out, lambda p: ImageSink(p, single=True)) if single else ImageSink(out, single=False)
    size = c.source.frame_size or (c.info.input_size[1], c.info.input_size[0])
    fps, codec, preset = c.source.fps or 30.0, c.request.codec, c.request.h264_preset
    return c.staged(out, lambda p: open_video_sink(p, fps, size, codec, preset))


@register_sink("save_masks")
def _masks(c: SinkContext) -> Sink | None:
    if not c.request.save_masks:
        return None
    masks = MaskSink(c.request.save_masks)
    write_classes_json(masks.folder, c.info)
    return masks


@register_sink("show")
def _window(c: SinkContext) -> Sink | None:
    if not c.request.show:
        return None
    if not display_available():
        if not c.request.quiet:
            log.info("rtseg: no display found; running headless (--no-show)")
        return None
    try:
        return WindowSink(f"rtseg - {c.info.name}", c.request_stop)
    except Exception as e:  # OpenCV built without GUI support, display refused...
        log.warning(f"rtseg: no window ({e.__class__.__name__}); running headless")
        return None


@register_sink("json_lines")
def _json_lines(c: SinkContext) -> Sink | None:
    if not c.request.json_lines:
        return None
    info = c.info
    return c.staged(
        Path(c.request.json_lines), lambda p: JsonLinesSink(p, info.classes, info.det_classes, redact(c.source.name), info.palette_rgb)
    )


@register_sink("serve")
def _live_view(c: SinkContext) -> Sink | None:
    if not c.request.serve:
        return None
    from .live_view import LiveView

    view = LiveView(c.request.serve, access=c.request.serve_access)
    log.info(f"rtseg: live view on {view.url} (MJPEG at {view.url}stream.mjpg, numbers at {view.url}stats.json)")
    return view


def _open_sinks(
    request: SinkRequest, source: Source, info: ModelInfo, request_stop: Callable[[], None], sinks: list[Sink], replaced: set[Path]
) -> None:
    def staged(path: Path, open_sink: Callable[[Path], Sink]) -> Sink:
        if path in replaced:
            return ReplaceInputAtEnd(open_sink(staging_path(path)), staging_path(path), path)
        if os.path.lexists(path) and not is_special(path):
            return StagedOutput(open_sink(staging_path(path)), staging_path(path), path)
        if is_special(path):  # /dev/stdout, a pipe: written in place, never renamed over or removed
            return open_sink(path)
        return CreatedOutput(open_sink(path), path)

    context = SinkContext(request, source, info, request_stop, staged)
    for opener in SINKS.values():
        sink = opener(context)
        if sink is not None:
            sinks.append(sink)  # at once: if a later one fails to open, build_sinks closes this one


def describe_outputs(sinks: list[Sink]) -> list[str]:
    """One line per file or folder the run wrote, for the summary."""
    return [line for s in sinks if (line := s.describe())]
