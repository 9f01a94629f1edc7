"""`Segmenter` and `stream`: rtseg from Python, one frame at a time or the whole threaded pipeline.

import rtseg

seg = rtseg.Segmenter()                        # the default model, best backend here
res = seg(frame_bgr)                           # a Result: .mask, .class_share, .boxes, .overlay()

for res in rtseg.stream("video.mp4", target_fps=30):   # threaded, in order; the selector holds 30 FPS
    ...
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ..core.constants import DEFAULT_ALPHA, DEFAULT_SCORE_THRESHOLD, IMAGE_SUFFIXES
from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo, resolve_model
from ..runtime.outputs import SinkRequest
from ..runtime.settings import BackendChoice, ModelChoice, RunSettings
from ..runtime.slot import ModelSlot, load_slot
from ..runtime.sources import ArraySource, LimitedSource, Source, as_bgr, open_input
from ..temporal import KeyFrames, TemporalSettings
from .result import Result
from .session import candidate_info, open_session
from .streaming import ResultStream


def api_choice(
    model: str | Path | None,
    target_fps: float | None,
    task: str,
    input_size: tuple[int, int] | None,
    alpha: float,
    score_threshold: float,
    legend: bool,
    rank_by: str,
    adapt: bool = True,
    temporal: TemporalSettings | None = None,
) -> ModelChoice:
    """The Python API's model options (`Segmenter`, `stream`, `stream_many` take the same ones) as a `ModelChoice`;
    a model given with a rate runs that model (the rate is only reported against)."""
    return ModelChoice(
        None if model is None else str(model),
        target_fps if model is None else None,
        task,
        input_size=(int(input_size[0]), int(input_size[1])) if input_size else None,
        alpha=alpha,
        score_threshold=score_threshold,
        legend=legend,
        adapt=adapt,
        rank_by=rank_by,
        temporal=temporal or TemporalSettings(),
    )


def _model_for(choice: ModelChoice, backend: str, threads: int) -> tuple[ModelInfo, tuple[int, int] | None, str | None]:
    """The model a segmenter loads, its input size and, when the selector chose it, why."""
    if choice.target_fps is not None and choice.selects:
        from ..selection.start import select_for_rate

        sel = select_for_rate(choice.target_fps, choice.task, backend, 1, threads, rank_by=choice.rank_by)
        return candidate_info(sel.choice), sel.choice.input_size, sel.why
    return resolve_model(choice.model), choice.input_size, None


def _read_frame(frame: np.ndarray | str | Path) -> tuple[np.ndarray, str | None]:
    """A BGR frame and the image file it came from, if any."""
    if isinstance(frame, (str, Path)):
        image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
        if image is None:
            raise RtsegError(f"cannot read image {frame}")
        return image, str(frame)
    return as_bgr(frame), None


def _source(source, frames: int | None, loop: int, realtime: bool) -> Source:
    """A path, URL or glob (str / Path), a camera index (int), or an iterable of BGR arrays."""
    if isinstance(source, (str, Path)):
        return open_input(str(source), None, loop, frames, realtime)
    if isinstance(source, int) and not isinstance(source, bool):
        return open_input(None, source, loop, frames, realtime)
    if isinstance(source, np.ndarray):
        source = [source]
    if isinstance(source, Iterable):
        return LimitedSource(ArraySource(source), frames) if frames else ArraySource(source)
    raise RtsegError(f"cannot read frames from a {type(source).__name__}: give a path, a URL, a camera index or frames")


class Segmenter:
    """A loaded model that segments one BGR frame per call, synchronously, in the calling thread.

    >>> import numpy as np, rtseg
    >>> frame = np.zeros((480, 640, 3), np.uint8)                  # a BGR frame: cv2.imread("street.jpg")
    >>> with rtseg.Segmenter(backend="onnxruntime") as seg:        # the default model
    ...     res = seg(frame)
    ...     overlay = res.overlay(legend=True)                     # cv2.imwrite("overlay.jpg", overlay)
    >>> overlay.shape
    (480, 640, 3)
    >>> sorted(res.ms)                                             # milliseconds per step
    ['infer', 'postprocess', 'preprocess']

    Args:
        model: a shipped or imported model's name, a path to an .onnx file, or None for the default.
        backend: auto (TensorRT > ONNX Runtime CUDA > CPU), onnxruntime, tensorrt or torch.
        target_fps: with no model, the most accurate shipped model that holds this rate here (profiled once per
            machine, then cached); giving both a model and a rate is an error.
        task: seg, det or segdet, what the chosen model must do (with `target_fps`).
        input_size: (height, width) to run the model at, if not its own.
        threads: inference threads (default: every core).
        alpha: the overlay's opacity; score_threshold: boxes under it are not drawn; legend: draw the class legend.
        precision: TensorRT's engine precision (fp16, fp32, int8).
        rank_by: which accuracy the selector ranks by (auto: the held-out drive where models have it).

    Raises:
        RtsegError: an unknown model, a model with a rate, a file that is not a model (one line, no traceback).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        backend: str = "auto",
        target_fps: float | None = None,
        task: str = "seg",
        input_size: tuple[int, int] | None = None,
        threads: int | None = None,
        alpha: float = DEFAULT_ALPHA,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        legend: bool = False,
        precision: str = "fp16",
        rank_by: str = "auto",
    ):
        _model_or_rate(model, target_fps)
        choice = api_choice(model, target_fps, task, input_size, alpha, score_threshold, legend, rank_by)
        self._backend = BackendChoice.resolve(backend, precision)
        self.backend_name = self._backend.name
        self.threads = threads or os.cpu_count() or 1
        info, size, self.why = _model_for(choice, self.backend_name, self.threads)
        self.slot: ModelSlot = load_slot(
            info,
            self.backend_name,
            threads=self.threads,
            input_size=size,
            alpha=alpha,
            score_threshold=score_threshold,
            legend=legend,
            **self._backend.options(),
        )
        # what a stream of this segmenter runs: the loaded model, named
        self._choice = replace(choice, model=info.name, target_fps=None, input_size=size)
        self._index = 0
        self._streams: weakref.WeakSet[ResultStream] = weakref.WeakSet()  # running streams: closed first

    # -- what it is ----------------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        return self.slot.info

    @property
    def name(self) -> str:
        """The model's name (with @HxW when it runs at another input size than its own)."""
        return self.slot.name

    @property
    def classes(self) -> tuple[str, ...]:
        """Class id -> name: `res.mask == seg.classes.index("Road")` selects a class."""
        return self.slot.info.classes

    @property
    def palette_rgb(self) -> list[tuple[int, int, int]]:
        return self.slot.info.palette_rgb

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model runs at; frames of any size are resized to it and results back."""
        return self.slot.input_size

    # -- work ------------------------------------------------------------------------------------------
    def __call__(self, source, *, stream: bool = False, **stream_options):
        """Segment whatever makes frames, as peers' `model(source)` does.

        Args:
            source: one frame (a BGR uint8 array as OpenCV reads it) or image file; a list of frames or image
                paths; or a video, folder, glob, URL or camera index, which goes through the threaded pipeline.
            stream: give results one at a time (a generator; a `ResultStream` for a video or camera) instead of
                all at once. A camera or URL never ends, so it needs `stream=True`.
            **stream_options: for a video, folder, glob, URL or camera: `stream()`'s frames, loop, realtime,
                output, save_masks, json, keyframe, smooth.

        Returns:
            A `Result` for one frame or image; a list of `Result`s, in order, for a list or a file source;
            with `stream=True`, an iterator of them.

        Raises:
            RtsegError: an unreadable image, options given for a frame or list, a live source without `stream=True`.

        Example:
            >>> import numpy as np, rtseg
            >>> frames = [np.zeros((120, 160, 3), np.uint8), np.full((120, 160, 3), 200, np.uint8)]
            >>> with rtseg.Segmenter(backend="onnxruntime") as seg:
            ...     results = seg(frames)
            >>> [r.mask.shape for r in results]
            [(120, 160), (120, 160)]
            >>> for res in seg("drive.mp4", stream=True, keyframe=2):     # doctest: +SKIP
            ...     res.save(f"out/{res.index:05d}.png")
        """
        single = isinstance(source, np.ndarray) or (isinstance(source, (str, Path)) and is_image_file(source))
        if (single or isinstance(source, (list, tuple))) and stream_options:
            raise RtsegError(
                f"{', '.join(sorted(stream_options))}: for a video, folder, glob, URL or camera; a frame, "
                "an image or a list is segmented frame by frame"
            )
        if single:
            result = self._one(source)
            return iter([result]) if stream else result
        if isinstance(source, (list, tuple)):
            each = (self._one(item) for item in source)
            return each if stream else list(each)
        results = self.stream(source, **stream_options)
        if stream:
            return results
        if results.live:
            results.close()
            raise RtsegError(f"{source} is live and never ends: iterate over seg({source!r}, stream=True)")
        with results:
            return list(results)

    def _one(self, frame: np.ndarray | str | Path) -> Result:
        """One frame or image file, synchronously in the calling thread."""
        image, file = _read_frame(frame)
        slot = self.slot
        t0 = time.perf_counter()
        x = slot.preprocess(image)
        t1 = time.perf_counter()
        outputs = slot.infer(x)
        t2 = time.perf_counter()
        pred = slot.postprocess(image, outputs, draw=False)
        t3 = time.perf_counter()
        ms = {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        index, self._index = self._index, self._index + 1
        return Result.of(slot, pred.mask, pred.shares, pred.detections, ms, image, index, file=file)

    def stream(
        self,
        source,
        *,
        frames: int | None = None,
        loop: int = 1,
        realtime: bool = False,
        output: str | None = None,
        save_masks: str | None = None,
        json: str | None = None,
        keyframe: int | str = 1,
        smooth: bool = False,
    ) -> ResultStream:
        """This model over a whole source through the threaded pipeline. The stream has its own buffers around
        the same loaded model, so calling the segmenter meanwhile is safe.

        Args:
            source, frames, loop, realtime, output, save_masks, json, keyframe, smooth: as for `rtseg.stream`.

        Returns:
            A `ResultStream`: iterate it for `Result`s in order; `with` closes it for certain.
        """
        c = replace(self._choice, temporal=temporal_settings(keyframe, smooth))
        settings = RunSettings(
            backend=self._backend,
            choice=c,
            sinks=SinkRequest(output, save_masks, json, show=False, quiet=True),
            frames=frames,
            loop=loop,
            realtime=realtime,
            quiet=True,
        )
        src = _source(source, frames, loop, realtime)
        try:
            slot = ModelSlot.for_backend(
                self.slot.info, self.slot.backend, self.slot.input_size, c.alpha, c.score_threshold, legend=c.legend
            )
            session = open_session(src, settings, slot=slot)
        except BaseException:
            src.close()
            raise
        stream = ResultStream(session)
        self._streams.add(stream)
        return stream

    # -- lifetime --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Free the model's session and buffers (also done by `with Segmenter(...) as seg:`); streams of this
        segmenter still running are stopped first."""
        for stream in list(self._streams):
            stream.close()
        self.slot.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Segmenter({self.name!r}, backend={self.slot.backend.name!r}, input_size={self.input_size})"


def is_image_file(path: str | Path) -> bool:
    """Whether `path` names one image file (not a folder, glob, video or URL)."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()


def temporal_settings(keyframe: KeyFrames | int | str | None, smooth: bool, flow: str | None = None) -> TemporalSettings:
    """Key frames and smoothing from the API's (and CLI's) plain values; a bad interval is one clear error."""
    try:
        settings = TemporalSettings(keyframe if isinstance(keyframe, KeyFrames) else KeyFrames.parse(keyframe), bool(smooth))
        return settings if flow is None else replace(settings, preset=flow)
    except ValueError as e:
        raise RtsegError(str(e)) from None


def _model_or_rate(model, target_fps) -> None:
    """`model` names the model, `target_fps` asks the selector to choose one: both at once would leave one
    of them ignored, so it is refused rather than guessed."""
    if model is not None and target_fps is not None:
        raise RtsegError(
            f"give model= or target_fps=, not both: model={str(model)!r} would be run whatever "
            f"the rate (target_fps={target_fps:g} picks the most accurate model that holds it)"
        )


def stream(
    source,
    model: str | Path | None = None,
    *,
    target_fps: float | None = None,
    backend: str = "auto",
    task: str = "seg",
    input_size: tuple[int, int] | None = None,
    frames: int | None = None,
    loop: int = 1,
    realtime: bool = False,
    output: str | None = None,
    save_masks: str | None = None,
    json: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    legend: bool = False,
    adapt: bool = True,
    streams: int | None = None,
    threads: int | None = None,
    precision: str = "fp16",
    rank_by: str = "auto",
    keyframe: int | str = 1,
    smooth: bool = False,
) -> ResultStream:
    """Every frame of `source` through rtseg's threaded pipeline, as an iterator of `Result`s, in order.

    >>> import numpy as np, rtseg
    >>> frames = (np.full((240, 320, 3), i, np.uint8) for i in range(0, 100, 10))  # or "video.mp4", 0, a URL
    >>> with rtseg.stream(frames, backend="onnxruntime") as results:
    ...     indices = [res.index for res in results]
    >>> indices, results.stats.frames_out
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10)

    >>> with rtseg.stream("video.mp4", target_fps=30, output="overlay.mp4") as results:  # doctest: +SKIP
    ...     for res in results:
    ...         if res.class_share.get("Pedestrian", 0) > 0.01:
    ...             print(res.index, "pedestrians")

    Args:
        source: a video file, an image, a folder or glob of images, a stream URL (rtsp://, http://...), a
            camera index (int), or an iterable of BGR arrays. Files give every frame in order; live sources
            (cameras, streams, `realtime=True`) keep only the newest frame when processing falls behind.
        model, target_fps, backend, task, input_size, alpha, score_threshold, legend, threads, precision,
            rank_by: as for `Segmenter`; with `target_fps` the selector also switches models while running to
            hold the rate (`adapt=False`: it chooses once).
        frames: stop after this many frames; loop: play a file this many times; realtime: pace a file like a camera.
        output, save_masks, json: the files `rtseg run --output/--save-masks/--json` writes.
        streams: inference streams (default: rtseg's choice for the source).
        keyframe: run the model on every Nth frame and carry its result to the frames between by optical flow
            ("auto": a new key frame when the motion says so; `res.inferred` tells them apart). A key frame is
            forced at a scene cut either way.
        smooth: steady the masks from frame to frame.

    Returns:
        A `ResultStream` of `Result`s in order; its `stats` (a `RunStats`) once it ends. Leave the loop early
        and the pipeline stops; `with` closes it for certain.

    Raises:
        RtsegError: an unreadable source, an unknown model, a model together with a rate.

    >>> with rtseg.stream("drive.mp4", keyframe=3, smooth=True) as results:   # doctest: +SKIP
    ...     inferred = sum(res.inferred for res in results)
    """
    _model_or_rate(model, target_fps)
    choice = api_choice(
        model, target_fps, task, input_size, alpha, score_threshold, legend, rank_by, adapt, temporal_settings(keyframe, smooth)
    )
    settings = RunSettings(
        backend=BackendChoice.resolve(backend, precision),
        choice=choice,
        sinks=SinkRequest(output, save_masks, json, show=False, quiet=True),
        target_fps=target_fps,
        streams=streams,
        threads=threads,
        realtime=realtime,
        frames=frames,
        loop=loop,
        quiet=True,
    )
    src = _source(source, frames, loop, realtime)
    try:
        session = open_session(src, settings)
    except BaseException:
        src.close()
        raise
    return ResultStream(session)
