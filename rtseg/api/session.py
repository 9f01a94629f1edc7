"""One run assembled: a source, the model (named, or chosen for a rate), the pipeline and the controller.

`rtseg run` and the Python API's `stream` both build their runs here, so a frame takes the same path
whichever way it is asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo, resolve_model
from ..temporal import KeyFrames, Temporal
from ..runtime.outputs import build_sinks
from ..runtime.pipeline import Pipeline, inference_layout
from ..runtime.settings import RunSettings
from ..runtime.slot import ModelSlot, load_slot
from ..runtime.sources import Source
from ..runtime.stats import RunStats

if TYPE_CHECKING:
    from ..selection.adaptive import AdaptiveRunner
    from ..selection.ladder import Candidate
    from ..selection.start import Selection

log = logging.getLogger(__name__)


def candidate_info(candidate: Candidate) -> ModelInfo:
    """The model of a rung the selector offers (its rungs are built from models; only tests make bare ones)."""
    if candidate.info is None:
        raise RtsegError(f"the selector's rung {candidate.name} names no model")
    return candidate.info


@dataclass
class Session:
    """A pipeline ready to run, and what it takes to finish it cleanly."""

    source: Source
    pipeline: Pipeline
    streams: int
    threads: int
    why: str | None = None  # the selector's reason for its first model
    runner: AdaptiveRunner | None = None  # when the selector keeps the rate
    owns_slot: bool = True  # False: the slot belongs to a Segmenter that outlives the run
    candidates: dict | None = None  # the selector's variants {name: (info, size)}: what a run can teach
    backend: str = "onnxruntime"
    rung: str | None = None  # the selector's first rung (model, size and key-frame interval)
    settle_key: str | None = None  # the selector's command key: where this run settles is kept under it

    def run(self, handle_signals: bool = True) -> RunStats:
        """Run to the end of the source (or a stop); every model the run loaded is closed afterwards."""
        try:
            stats = self.pipeline.run(handle_signals=handle_signals)
        finally:
            self.close_models()
        if self.runner is not None:
            stats.switches = self.runner.switches
        self._learn(stats)
        self._settle()
        return stats

    def _settle(self, min_seconds: float = 2.0, min_frames: int = 10) -> None:
        """Keep the rung the selector ended on, so the same command here starts there next time; only after a
        stretch long enough to be a verdict (a live run stopped with Ctrl-C counts: that is how it ends)."""
        if self.runner is None or not self.settle_key:
            return
        last = self.runner.settled()
        if last is None or last[2] < min_seconds or last[1] < min_frames:
            return
        from ..selection.profiling import remember_settled

        try:
            remember_settled(self.backend, self.streams, self.threads, self.settle_key, *last, self.runner.controller.target)
        except OSError as e:  # a read-only cache: the next run chooses afresh
            log.debug(f"rtseg: selector: could not keep where this run settled ({e})")

    def _learn(self, stats: RunStats) -> None:
        """A file run with the selector measured its models' real speed here: keep it where only estimates were."""
        if not self.candidates or self.source.live or stats.interrupted:
            return
        from ..selection.profiling import learn_from_run

        observed: dict[str, tuple[float, float]] = (
            self.runner.observed() if self.runner is not None else {self.rung or self.pipeline.slot.name: (stats.frames_out, stats.seconds)}
        )
        try:
            learned = learn_from_run(self.backend, self.streams, self.threads, observed, self.candidates)
        except OSError as e:  # a read-only cache: the run itself succeeded, only the lesson is lost
            log.debug(f"rtseg: selector: could not keep this run's speeds ({e})")
            return
        if learned:
            log.info(f"rtseg: selector: kept this run's speed of {', '.join(learned)} for later runs")

    def close_models(self) -> None:
        slots = {id(s): s for s in ([self.pipeline.slot] + list(getattr(self.runner, "slots", {}).values()))}
        for s in slots.values():
            if self.owns_slot or s is not self.pipeline.slot:
                s.close()


def open_session(source: Source, settings: RunSettings, progress: bool = False, slot: ModelSlot | None = None) -> Session:
    """Load the model the settings name (or select one for their rate), open their sinks and wire the pipeline.

    The sinks open once the model is known (a window's `q` stops the run). With `slot`, that already-loaded
    model runs and stays open after the run (its backend, threads and overlay options are the slot's own).
    """
    choice, backend, queue_size = settings.choice, settings.backend, settings.queue_size
    if choice.selects and not choice.temporal.keyframes.every_frame:
        raise RtsegError(
            "--keyframe with --target-fps: the selector chooses the key-frame interval itself (its "
            "rungs /kfN); give --model to fix the model and the interval"
        )
    streams, threads = inference_layout(settings.streams, settings.threads, source.live)
    if slot is not None:
        streams = 1  # a loaded slot already has its threads: one stream uses them all
    sel: Selection | None = None
    size = choice.input_size
    if slot is not None:
        info = slot.info
    elif choice.selects:
        from ..selection.start import select_for_rate

        target = choice.target_fps
        assert target is not None  # what `selects` means: a rate and no model
        sel = select_for_rate(target, choice.task, backend.name, streams, threads, choice.margin, choice.max_latency, choice.rank_by)
        info, size = candidate_info(sel.choice), sel.choice.input_size
        log.info(f"rtseg: selector: {sel.why}")
    else:
        info = resolve_model(choice.model)

    def load(i: ModelInfo, input_size: tuple[int, int] | None) -> ModelSlot:
        return load_slot(
            i,
            backend.name,
            threads=threads,
            input_size=input_size,
            alpha=choice.alpha,
            score_threshold=choice.score_threshold,
            legend=choice.legend,
            pool_size=queue_size + streams + 2,
            **backend.options(),
        )

    current = slot or load(info, size)
    pipeline: Pipeline | None = None

    def stop() -> None:  # a window's `q`
        if pipeline is not None:
            pipeline.stop()

    try:
        sinks = build_sinks(settings.sinks, source, info, stop)
    except BaseException:
        if slot is None:
            current.close()
        raise
    ladder = sel.ladder if sel is not None else []
    temporal: Temporal | None = None
    if sel is not None and any(c.keyframe > 1 for c in ladder):  # the selector's rungs carry a key-frame interval
        temporal = Temporal(replace(choice.temporal, keyframes=KeyFrames(sel.choice.keyframe)))
    elif choice.temporal.active:
        temporal = Temporal(choice.temporal)
    pipeline = Pipeline(source, current, sinks, queue_size=queue_size, streams=streams, progress=progress, temporal=temporal)
    session = Session(
        source,
        pipeline,
        streams,
        threads,
        sel.why if sel else None,
        owns_slot=slot is None,
        backend=backend.name,
        candidates={c.name: (c.info, c.input_size, c.keyframe) for c in ladder} if ladder else None,
        rung=sel.choice.name if sel else None,
        settle_key=sel.settle_key if sel else None,
    )
    if sel is not None and len(ladder) > 1 and choice.adapt and choice.target_fps is not None:
        from ..selection.adaptive import AdaptiveRunner
        from ..selection.ladder import Controller

        session.runner = AdaptiveRunner(
            pipeline,
            Controller(ladder, sel.index, choice.target_fps),
            lambda c: load(candidate_info(c), c.input_size),
            live=source.live,
            streams=streams,
        )
        pipeline.on_frame = session.runner.on_frame
    return session
