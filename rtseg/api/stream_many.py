"""`stream_many`: several sources through one model, as one iterator of (label, Result).

    import rtseg

    with rtseg.stream_many(["rtsp://cam/1", "rtsp://cam/2", "yard.mp4"], target_fps=15) as results:
        for label, res in results:                 # as each source's frames are done, interleaved
            print(label, res.index, res.class_share.get("Pedestrian", 0.0))
    results.stats["yard"].fps                      # each source's RunStats once it ended

The sources run as `rtseg run SRC1 SRC2 ...` runs them (`runtime.group.SourceGroup`): a pipeline and a
thread each, one loaded model shared, each live source reconnecting on its own; with `target_fps` the
most accurate model that holds it on every source, switched for all of them together while running.
Files give every frame, in order within each source (a slow consumer slows them, nothing is dropped);
live sources keep only their newest frame when the consumer falls behind. Leaving the loop early stops
every source and closes what was opened.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from ..core.constants import DEFAULT_ALPHA, DEFAULT_SCORE_THRESHOLD
from ..core.errors import RtsegError
from ..runtime.channels import AbortAware
from ..runtime.group import SourceGroup
from ..runtime.settings import BackendChoice, RunSettings
from ..runtime.source_list import NamedSource, expand_sources
from ..runtime.stats import RunStats
from ..selection.group_adaptive import choose_for_group
from .result import Result
from .segmenter import api_choice
from .streaming import _Handoff

_END = object()


class ManyResultStream:
    """Iterate to get (label, Result) from every source; `stats` maps each label to its `RunStats` once the
    source has ended, `labels` lists the sources' labels (their names in outputs and pages)."""

    def __init__(self, group: SourceGroup, buffer: int):
        self.group = group
        self.labels = [lane.label for lane in group.lanes]
        self._queue: queue.Queue = queue.Queue(buffer)
        self._closed = threading.Event()
        self._done = False
        for lane in group.lanes:
            assert lane.pipeline is not None, "a group that is not tolerant opens and wires every source in load()"
            lane.pipeline.sinks.append(_Handoff(self._queue, self._closed, lane.label))
        group.start()
        self._watcher = threading.Thread(target=self._watch, name="rtseg-stream-many", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        self.group.wait()
        AbortAware(self._closed).put(self._queue, _END)

    @property
    def stats(self) -> dict[str, RunStats | None]:
        return {lane.label: lane.stats for lane in self.group.lanes}

    def __iter__(self) -> "ManyResultStream":
        return self

    def __next__(self) -> tuple[str, Result]:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END or self._closed.is_set():
            self.close()
            failed = next((lane for lane in self.group.lanes if lane.error is not None), None)
            if failed is not None:  # every other source ran to its end; the first failure is said
                raise RtsegError(f"source {failed.label}: {failed.error}") from failed.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop every source (frames in flight are discarded) and close what they opened; safe to call twice."""
        if self._done:
            return
        self._done = True
        self.group.abort()
        self._closed.set()
        self.group.wait()
        self._watcher.join()
        self.group.close()

    def __enter__(self) -> "ManyResultStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            self.close()


def stream_many(
    sources: list[str | Path] | str | Path,
    model: str | Path | None = None,
    *,
    target_fps: float | None = None,
    backend: str = "auto",
    task: str = "seg",
    input_size: tuple[int, int] | None = None,
    frames: int | None = None,
    loop: int = 1,
    realtime: bool = False,
    alpha: float = DEFAULT_ALPHA,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    legend: bool = False,
    adapt: bool = True,
    threads: int | None = None,
    reconnect: int | None = 5,
    precision: str = "fp16",
    rank_by: str = "auto",
    buffer: int | None = None,
) -> ManyResultStream:
    """Several sources through one model, as an iterator of (label, Result); see the module docstring.

    Args:
        sources: paths, URLs or camera:// URIs, or a source list (.txt / .toml, as `rtseg run cams.txt` reads
            them), whose labels name the results.
        model, target_fps: as for `rtseg.stream`; with `target_fps` the rate is held on every source at once.
        threads: inference threads per source (default: the cores shared out).
        reconnect: a live source's reopen attempts in a row (None: forever).
        buffer: results waiting for the consumer (default: one per source).
        backend, task, input_size, frames, loop, realtime, alpha, score_threshold, legend, adapt, precision,
            rank_by: as for `rtseg.stream`.

    Returns:
        A `ManyResultStream` of (label, `Result`) as they come (each source's in order); `stats` per label.

    Example:
        >>> with rtseg.stream_many(["cam1.mp4", "cam2.mp4"], target_fps=15) as results:  # doctest: +SKIP
        ...     for label, res in results:
        ...         print(label, res.index, res.class_share.get("Car", 0))
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    named: list[NamedSource] = expand_sources([str(s) for s in sources])
    if not named:
        raise RtsegError("stream_many needs at least one source")
    choice = api_choice(model, target_fps, task, input_size, alpha, score_threshold, legend, rank_by, adapt)
    settings = RunSettings(
        backend=BackendChoice.resolve(backend, precision),
        choice=choice,
        target_fps=target_fps,
        threads=threads,
        realtime=realtime,
        frames=frames,
        loop=loop,
        quiet=True,
        reconnect=reconnect,
    )
    group = SourceGroup(settings, named)
    try:
        group.load(choose_for_group)
    except BaseException:
        group.close()
        raise
    return ManyResultStream(group, buffer or len(named))
