"""The settings of a run, declared once: what `rtseg run` (one source or many), `rtseg serve`, `rtseg.stream` and
`rtseg.stream_many` were asked to do.

Each front builds one frozen `RunSettings` (the CLI in cli/run.py, the Python API in api/segmenter.py and
api/stream_many.py) and hands it down whole: the one-source run (`api.session.open_session`), a group of
sources (`runtime.group.SourceGroup`) and a camera actor of `rtseg serve` all read it, so a setting and its
default are written here and nowhere else. Its parts: `BackendChoice` (which backend, with its options),
`ModelChoice` (which model, or the rate the selector keeps, and how its results are drawn), `SinkRequest` (what
is written and shown, runtime/outputs.py), and the pacing and layout of the run itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.constants import DEFAULT_ALPHA, DEFAULT_SCORE_THRESHOLD
from ..core.errors import RtsegError
from ..core.tasks import normalize_task
from ..temporal import TemporalSettings
from .outputs import SinkRequest

PRECISIONS = ("fp32", "fp16", "int8")  # TensorRT's engine precisions


@dataclass(frozen=True)
class BackendChoice:
    """`--backend` with `auto` made concrete (once, when the settings are made), and `--precision`, which only
    TensorRT takes.

    >>> BackendChoice.resolve("onnxruntime").options()
    {}
    >>> BackendChoice("tensorrt", "int8").options()
    {'precision': 'int8'}
    """

    name: str = "onnxruntime"
    precision: str = "fp16"
    why: str | None = None  # why `auto` chose it: said once the model has loaded

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise RtsegError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")

    @classmethod
    def resolve(cls, backend: str = "auto", precision: str = "fp16") -> BackendChoice:
        """The backend `backend` names; `auto` probes what this machine can run (TensorRT, CUDA, the CPU)."""
        from ..backends.choice import resolve_backend

        name, why = resolve_backend(backend)
        return cls(name, precision, why)

    def options(self) -> dict:
        """The backend's own options, passed on to `load_slot`."""
        return {"precision": self.precision} if self.name == "tensorrt" else {}


@dataclass(frozen=True)
class ModelChoice:
    """Which model runs and how its results are drawn: a name or path, or a target rate the selector chooses
    (and keeps) a model for.

    >>> ModelChoice(target_fps=30).selects, ModelChoice("mnv2-050-dlv3p-os16-240x320-voc").selects
    (True, False)
    """

    model: str | None = None
    target_fps: float | None = None  # with no model: choose for this rate
    task: str = "seg"
    margin: float = 1.1  # the selector wants this much headroom over the target
    max_latency: float | None = None  # ms from capture to result the selector may not exceed
    adapt: bool = True  # with target_fps: keep it held while running, switching models
    input_size: tuple[int, int] | None = None
    alpha: float = DEFAULT_ALPHA  # the overlay's opacity
    score_threshold: float = DEFAULT_SCORE_THRESHOLD  # boxes under it are not drawn
    legend: bool = False  # draw the class colour legend on the overlay
    rank_by: str = "auto"  # the selector's accuracy: auto, heldout or val
    temporal: TemporalSettings = field(default_factory=TemporalSettings)  # key frames with motion propagation, smoothing

    def __post_init__(self) -> None:
        try:
            normalize_task(self.task)
        except ValueError as e:
            raise RtsegError(str(e)) from None
        if self.target_fps is not None and not self.target_fps > 0:
            raise RtsegError(f"target_fps must be above 0 (got {self.target_fps:g})")
        if not 0.0 <= self.alpha <= 1.0:
            raise RtsegError(f"alpha is the overlay's opacity, from 0 to 1 (got {self.alpha:g})")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 1):
            raise RtsegError(f"input_size is (height, width) in pixels (got {self.input_size})")

    @property
    def selects(self) -> bool:
        """Whether the selector chooses the model (a rate and no model)."""
        return self.target_fps is not None and self.model is None


@dataclass(frozen=True)
class RunSettings:
    """Everything a run was asked to do: its sources, model, backend, outputs and pacing.

    Args:
        source: a file, folder, glob, URL or `camera://N` (None with `camera`, or for a group of sources).
        camera: a camera index (`--camera N`).
        backend: the concrete backend.
        choice: the model, or the rate the selector chooses (and keeps) one for.
        sinks: what is written and shown.
        target_fps: reported against at the end in any case (selected for when `choice` names no model).
        streams, threads: the inference layout (None, or 0 threads: rtseg's choice for the source; in a group,
            threads per source, the cores shared out).
        realtime: pace a file like a camera.
        frames: stop after this many frames.
        loop: play a file this many times.
        queue_size: frames waiting between stages.
        stats: a JSON file the run's statistics go to.
        quiet: no progress and no summary lines.
        reconnect: live sources: attempts in a row before giving up (None: forever).
        cores: the cores the run may use (a camera actor's CPUs); None: every core here.

    Example:
        >>> s = RunSettings("clip.mp4", None, BackendChoice("onnxruntime"), ModelChoice(target_fps=30),
        ...                 SinkRequest(output="out.mp4", show=False), target_fps=30)
        >>> s.choice.selects, s.sinks.output
        (True, 'out.mp4')
        >>> RunSettings(choice=ModelChoice("my-model.onnx"), loop=0)
        Traceback (most recent call last):
        ...
        rtseg.core.errors.RtsegError: loop must be 1 or more (got 0)
    """

    source: str | None = None
    camera: int | None = None
    backend: BackendChoice = field(default_factory=BackendChoice)
    choice: ModelChoice = field(default_factory=ModelChoice)
    sinks: SinkRequest = field(default_factory=lambda: SinkRequest(show=False))
    target_fps: float | None = None
    streams: int | None = None
    threads: int | None = None
    realtime: bool = False
    frames: int | None = None
    loop: int = 1
    queue_size: int = 2
    stats: str | None = None
    quiet: bool = False
    reconnect: int | None = 5
    cores: int | None = None

    def __post_init__(self) -> None:
        for name in ("loop", "queue_size"):
            if getattr(self, name) < 1:
                raise RtsegError(f"{name} must be 1 or more (got {getattr(self, name)})")
        for name, low in (("frames", 1), ("streams", 1), ("threads", 0), ("cores", 0)):  # threads 0: the default, as in ONNX Runtime
            value = getattr(self, name)
            if value is not None and value < low:
                raise RtsegError(f"{name} must be {low} or more (got {value})")
        if self.reconnect is not None and self.reconnect < 0:
            raise RtsegError(f"reconnect must be 0 or more, or None for forever (got {self.reconnect})")
        if self.target_fps is not None and not self.target_fps > 0:
            raise RtsegError(f"target_fps must be above 0 (got {self.target_fps:g})")
