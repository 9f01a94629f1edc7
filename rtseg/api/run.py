"""One source through the pipeline, start to end: what `rtseg run SOURCE` does once its arguments are read.

Opens the source and the outputs, loads the model (or lets the selector choose it), runs, says what happened
and returns the exit status (README, "Exit codes"): 0 the input ended as announced; 1 an error; 3 a file
ended before the frames its header announced; 4 a live source lost; 128 + the signal when Ctrl-C (130) or
SIGTERM (143) stopped it. Several sources go through api/run_many.py instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from ..core.errors import RtsegError
from ..core.redact import redact
from ..runtime.stats import RunStats
from .session import Session
from ..runtime.settings import RunSettings

log = logging.getLogger(__name__)


def run_one(settings: RunSettings) -> int:
    """Run `settings.source` (or its camera) to the end and return the exit status.

    Example:
        >>> from rtseg.runtime.outputs import SinkRequest
        >>> settings = RunSettings("examples/camvid_0016E5.mp4", sinks=SinkRequest(output="overlay.mp4", show=False))
        >>> run_one(settings)  # doctest: +SKIP
        0
    """
    from ..runtime.sources import open_input
    from .session import open_session

    if settings.sinks.json_lines is True:
        raise RtsegError("--json without FILE writes <label>.jsonl into --output-dir DIR: give --json FILE, or --output-dir")
    if settings.stats:
        from ..runtime.sinks import require_writable

        require_writable(Path(settings.stats), "--stats")
        # planned, checked and locked with the other outputs (runtime/output_plan.py)
        settings = replace(settings, sinks=replace(settings.sinks, stats=settings.stats))
    source = open_input(settings.source, settings.camera, settings.loop, settings.frames, settings.realtime, settings.reconnect)
    session = open_session(source, settings, progress=not settings.quiet)
    say_start(settings, session)
    stats = session.run()  # every model it loaded is closed as it ends, not at exit
    say_end(settings, session, stats)
    if settings.stats:
        write_stats(settings, session, stats)
    pipeline = session.pipeline
    # like a shell: 128 + signal number when Ctrl-C (130) or SIGTERM (143) stopped the run
    return 128 + pipeline.stop_signal if pipeline.stop_signal else stats.exit_code


def say_start(settings: RunSettings, session: Session) -> None:
    """What runs, on what, before the first frame."""
    pipeline, source, slot = session.pipeline, session.source, session.pipeline.slot
    if not pipeline.sinks:
        log.info("rtseg: nothing to show or save (no window, --output, --save-masks or --json): measuring throughput only")
    kind = "live" if source.live else f"{source.frame_count or '?'} frames"
    if settings.backend.why:
        log.info(f"rtseg: backend auto: {settings.backend.why}")
    log.info(
        f"rtseg: {slot.name} ({slot.pre.height}x{slot.pre.width}, {slot.backend.name}, {session.streams} stream(s) x "
        f"{session.threads} thread(s)) on {source.name} ({kind})"
    )


def say_end(settings: RunSettings, session: Session, stats: RunStats) -> None:
    """The summary, the outputs written, the target's verdict, and every way the run fell short."""
    from ..runtime.outputs import describe_outputs

    pipeline, source = session.pipeline, session.source
    log.info(stats.summary())
    if pipeline.frames_i420:  # the faster path (runtime/yuv.py): said, so a slower run can be told apart
        log.info("rtseg: frames kept in YUV 4:2:0 from decoding to encoding (PyAV)")
    for line in describe_outputs(pipeline.sinks):
        log.info(f"wrote {line}")
    if settings.target_fps:
        verdict = "met" if stats.fps >= settings.target_fps else "NOT met"
        log.info(f"target {settings.target_fps:g} FPS {verdict} ({stats.fps:.1f} FPS)")
    if stats.skipped_inputs:
        log.info(f"unreadable inputs skipped: {', '.join(stats.skipped_inputs[:5])}" + (" ..." if len(stats.skipped_inputs) > 5 else ""))
    if stats.source_lost:
        log.warning(
            f"rtseg: live source lost: {redact(source.name)} did not come back after {stats.gaps[-1]['attempts']} "
            f"reconnect attempt(s); {len(stats.gaps) - 1} earlier outage(s) recovered"
        )
    if stats.nothing_decoded:
        log.error(
            f"rtseg: error: no frame of {redact(source.name)} could be decoded"
            + (f" ({len(stats.skipped_inputs)} unreadable inputs)" if stats.skipped_inputs else "")
        )
    if stats.ended_early:
        log.warning(
            f"rtseg: input ended early: {stats.frames_in} of the {stats.expected_frames} frames it announced "
            "could be decoded (a truncated or damaged file); every decoded frame was processed"
        )


def write_stats(settings: RunSettings, session: Session, stats: RunStats) -> None:
    """`--stats FILE`: the run's numbers and what ran them, written whole or not at all."""
    from ..runtime.output_plan import write_atomically

    assert settings.stats is not None, "write_stats is called for runs with --stats"
    slot = session.pipeline.slot
    doc = stats.to_dict() | {
        "model": slot.name,
        "backend": slot.backend.name,
        "input_size": [slot.pre.height, slot.pre.width],
        "source": redact(session.source.name),
        "streams": session.streams,
        "threads": session.threads,
        "target_fps": settings.target_fps,
        "selector_start": session.rung,
        "selector_why": session.why,
    }
    write_atomically(Path(settings.stats), json.dumps(doc, indent=2) + "\n", "--stats")
