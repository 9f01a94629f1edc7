"""One video through the ordinary pipeline, by a worker that already holds the model: what `rtseg run VIDEO
--output ... --json ... --save-masks ...` does, written to a staging folder and committed only when complete.

`process_video` is a generator of events, so the same code reports progress to a progress bar in this process
and, as a Ray generator task, to the driver of a fleet: `Progress` now and then, one `Outcome` at the end.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .. import __version__
from ..api.session import open_session
from ..api.streaming import ResultStream
from ..core.errors import RtsegError
from ..runtime.outputs import SinkRequest
from ..runtime.settings import ModelChoice, RunSettings
from ..runtime.slot import ModelSlot
from ..runtime.sources import open_input
from ..runtime.stats import RunStats
from .commit import Staging
from .plan import VideoJob

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.25  # progress events per video: often enough for the bar, rare enough to cost nothing


@dataclass(frozen=True)
class Progress:
    """Frames written so far by the attempt at video `key` running in process `pid` on `host`."""

    key: str
    frames: int
    host: str
    pid: int


@dataclass(frozen=True)
class Retry:
    """The worker running video `key` died: it starts again (attempt `attempt`) on another worker."""

    key: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class Outcome:
    """How a video ended: done (committed), skipped (done before), or failed, with a one-line reason."""

    key: str
    status: str  # "done", "skipped" or "failed"
    frames_in: int = 0
    frames_out: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    model: str | None = None
    note: str | None = None  # why it failed, or what else there is to know of a done video
    attempt: int = 1

    @classmethod
    def from_record(cls, key: str, record: dict) -> "Outcome":
        """A video a done-record vouches for, with the numbers of the run that made it."""
        return cls(
            key,
            "skipped",
            record.get("frames_in", 0),
            record.get("frames_out", 0),
            record.get("fps", 0.0),
            record.get("seconds", 0.0),
            record.get("model"),
            f"done {record.get('date', 'before')}",
        )


def _text(path) -> str | None:
    return None if path is None else str(path)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C or SIGTERM that comes while a run is being wired takes effect once it is wired: one that lands
    inside the opening of the overlay file, or between the pipeline thread's start and the stream that stops
    it, would leave that thread running on a model the batch then closes (the process aborts at exit)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or any(signal.getsignal(s) is None for s in signals):
        yield  # signals are handled in the main thread only, and a handler set outside Python cannot be put back
        return
    held: list[int] = []
    handlers = {}
    try:
        for s in signals:  # one at a time, inside the try: a signal between two installs still finds each restored
            handlers[s] = signal.signal(s, lambda signum, _frame: held.append(signum))
        yield
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])  # now, through the handler it was meant for


@contextmanager
def _results(job: VideoJob, slot: ModelSlot, staging: Staging) -> Iterator[ResultStream]:
    """The video's run, wired as `rtseg run` wires one (the held model, the sinks into the staging folder)."""
    sinks = SinkRequest(
        output=str(staging.overlay), json_lines=_text(staging.jsonl), save_masks=_text(staging.masks_dir), show=False, quiet=True
    )
    results = None
    try:
        with _signals_held():
            source = open_input(job.input)
            try:
                # the choice only names the model: with a held slot, nothing is loaded or selected
                session = open_session(source, RunSettings(choice=ModelChoice(slot.info.name), sinks=sinks), slot=slot)
            except BaseException:
                source.close()  # the session never took it over
                raise
            results = ResultStream(session)
        yield results
    finally:
        if results is not None:
            results.close()


def _incomplete(stats: RunStats) -> str | None:
    """Why a finished run must not be committed: a file run writes one output frame per input frame."""
    if stats.frames_in == 0:
        return "no frame could be decoded"
    if stats.frames_out != stats.frames_in:
        return f"only {stats.frames_out} of {stats.frames_in} frames were written"
    return None


def _record(job: VideoJob, stats: RunStats, slot: ModelSlot, attempt: int, host: str, pid: int) -> dict:
    return {
        **job.identity(),
        "frames_in": stats.frames_in,
        "frames_out": stats.frames_out,
        "fps": round(stats.fps, 2),
        "seconds": round(stats.seconds, 3),
        "model": slot.name,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "attempt": attempt,
        "worker": f"{host}:{pid}",
        "rtseg": __version__,
    }


def process_video(job: VideoJob, slot: ModelSlot, attempt: int = 1) -> Iterator[Progress | Outcome]:
    """Segment one video with the loaded `slot`, committing its outputs only when every frame is written.

    Yields `Progress` events while it runs and one `Outcome`; a video that cannot be processed ends in a failed
    `Outcome` with a one-line reason (the fleet goes on with the others), never in an exception.
    """
    host, pid = socket.gethostname(), os.getpid()
    staging = None
    try:
        staging = Staging.begin(job.outputs, attempt)
        yield Progress(job.key, 0, host, pid)
        last = time.monotonic()
        with _results(job, slot, staging) as results:
            for frames, _ in enumerate(results, 1):
                if time.monotonic() - last >= REPORT_EVERY_S:
                    yield Progress(job.key, frames, host, pid)
                    last = time.monotonic()
        stats = results.stats
        assert stats is not None  # the stream ended without an error: its run returned them
        problem = _incomplete(stats)
        if problem:
            raise RtsegError(problem)
        staging.commit(_record(job, stats, slot, attempt, host, pid))
    except Exception as e:
        if staging is not None:
            staging.discard()
        if not isinstance(e, RtsegError):  # a bug, not the video: keep its traceback (debug level)
            log.debug(f"rtseg: batch: {job.input}", exc_info=True)
        reason = str(e) if isinstance(e, RtsegError) else f"{type(e).__name__}: {e}"
        yield Outcome(job.key, "failed", note=" ".join(reason.split()), attempt=attempt)  # one line: a table row
        return
    except BaseException:  # Ctrl-C in this process, or the generator closed: nothing of the attempt is kept
        if staging is not None:
            staging.discard()
        raise
    note = (
        f"input ended early: {stats.frames_in} of the {stats.expected_frames} frames it announced could be decoded"
        if stats.ended_early
        else None
    )
    yield Progress(job.key, stats.frames_out, host, pid)
    yield Outcome(job.key, "done", stats.frames_in, stats.frames_out, stats.fps, stats.seconds, slot.name, note, attempt)
