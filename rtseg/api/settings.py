"""The settings of one run, declared once: what `rtseg run` (one source or many) was asked to do.

The CLI reads its arguments into a `RunSettings` (cli/run.py, `run_settings`); the one-source run (api/run.py) and
the many-source run (api/run_many.py) work from it, so a setting travels in one frozen value instead of being
copied between the layers. Its parts are the other layers' own settings types: `ModelChoice` (which model,
or the rate the selector keeps), `SinkRequest` (what is written and shown) and `BackendChoice` below.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..runtime.outputs import SinkRequest
from .session import ModelChoice


@dataclass(frozen=True)
class BackendChoice:
    """`--backend` with `auto` made concrete (once, when the settings are made), and `--precision`, which only
    TensorRT takes.

    >>> BackendChoice.resolve("onnxruntime").options()
    {}
    >>> BackendChoice("tensorrt", "int8").options()
    {'precision': 'int8'}
    """

    name: str
    precision: str = "fp16"
    why: str | None = None  # why `auto` chose it: said once the model has loaded

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
class RunSettings:
    """Everything a run was asked to do: its sources, model, backend, outputs and pacing.

    Args:
        source: a file, folder, glob, URL or `camera://N` (None with `camera`).
        camera: a camera index (`--camera N`).
        backend: the concrete backend.
        choice: the model, or the rate the selector chooses (and keeps) one for.
        sinks: what is written and shown.
        target_fps: reported against at the end in any case (selected for when `choice` names no model).
        streams, threads: the inference layout (None: rtseg's choice for the source).
        realtime: pace a file like a camera.
        frames: stop after this many frames.
        loop: play a file this many times.
        queue_size: frames waiting between stages.
        stats: a JSON file the run's statistics go to.
        quiet: no progress and no summary lines.
        reconnect: live sources: attempts in a row before giving up (None: forever).

    Example:
        >>> from rtseg.api.session import ModelChoice
        >>> from rtseg.runtime.outputs import SinkRequest
        >>> s = RunSettings("clip.mp4", None, BackendChoice("onnxruntime"), ModelChoice(target_fps=30),
        ...                 SinkRequest(output="out.mp4", show=False), target_fps=30)
        >>> s.choice.selects, s.sinks.output
        (True, 'out.mp4')
    """

    source: str | None
    camera: int | None
    backend: BackendChoice
    choice: ModelChoice
    sinks: SinkRequest
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
