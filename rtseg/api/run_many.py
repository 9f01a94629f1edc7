"""Many sources in one process: `rtseg run SRC1 SRC2 ... --output-dir DIR` (or a source list, cams.toml).

Every source runs through its own pipeline around one loaded model (`runtime.group.SourceGroup`); this
module is the command's side of it: what is refused before any work, one live view server for every
source (`--serve`), the signals (the first Ctrl-C / SIGTERM stops every source, each drains and closes its
outputs; a second aborts), and the summary per source.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from ..core.errors import RtsegError
from ..runtime.channels import POLL_S
from ..core.redact import redact
from ..runtime.group import Lane, SourceGroup, source_labels
from ..runtime.source_list import NamedSource, expand_sources
from ..runtime.settings import RunSettings
from ..selection.group_adaptive import choose_for_group

log = logging.getLogger(__name__)

__all__ = ["run_many", "source_labels"]


# -- refusals, before any work -----------------------------------------------------------------------
def refuse_one_source_options(request: RunSettings, sources: list[NamedSource], output_dir: str | None) -> None:
    """Options that name one output are refused with several sources (and with --output-dir, which names
    every output itself)."""
    if not sources:
        raise RtsegError("give at least one SOURCE (a camera as camera://N)")
    many = len(sources) > 1
    where = "with several sources" if many else "with --output-dir"
    sinks = request.sinks
    if request.choice.selects and not request.choice.temporal.keyframes.every_frame:
        raise RtsegError(
            "--keyframe with --target-fps: the selector chooses the model for every frame of each "
            "source; give --model to fix the model and the interval"
        )
    if output_dir is None and not sinks.serve:
        raise RtsegError(
            "several sources need --output-dir DIR (each source's overlay, and with --json its JSON "
            "lines, is written there as <label>.mp4 / <label>.jsonl), or --serve PORT to watch them all"
        )
    if request.camera is not None:
        raise RtsegError(f"--camera {where}: give the camera as a SOURCE instead (camera://N or /dev/videoN)")
    for flag, value in (("--output", sinks.output), ("--save-masks", sinks.save_masks)):
        if value:
            raise RtsegError(f"{flag} works with one source and no --output-dir ({where}, each source's overlay goes to DIR/<label>.mp4)")
    if isinstance(sinks.json_lines, str):
        raise RtsegError(
            f"--json FILE (here {sinks.json_lines}) works with one source and no --output-dir ({where}, "
            "give --json alone, after the sources: each source's lines go to DIR/<label>.jsonl)"
        )
    if sinks.json_lines and output_dir is None:
        raise RtsegError("--json with several sources writes DIR/<label>.jsonl: give --output-dir DIR")


def check_output_dir(output_dir: str) -> Path:
    """The folder every source's outputs go in: it must exist and be writable (it is not created: a typo would
    otherwise scatter outputs into a new folder)."""
    folder = Path(output_dir)
    if not folder.exists():
        raise RtsegError(f"--output-dir {output_dir}: no such folder")
    if not folder.is_dir():
        raise RtsegError(f"--output-dir {output_dir} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise RtsegError(f"--output-dir {output_dir}: folder is not writable")
    return folder.resolve()


def refuse_inputs_in(folder: Path, lanes: list[Lane]) -> None:
    """An output folder holding an input could have it overwritten by another source's <label>.mp4, and a
    later run over the folder would take this run's outputs for inputs."""
    for lane in lanes:
        files = lane.source.files if lane.source is not None else []
        inside = next((f for f in files if Path(f).resolve().parent == folder), None)
        if inside is not None:
            raise RtsegError(
                f"--output-dir {folder} holds input {Path(inside).name} (source {lane.uri}): give the outputs a folder of their own"
            )


# -- running, with the signals -----------------------------------------------------------------------
def run_with_signals(group: SourceGroup) -> int | None:
    """Every source to its end; returns the signal that stopped the run, if one did. The first Ctrl-C /
    SIGTERM stops every source (each drains and closes its outputs), a second aborts them all."""
    stopped_by: list[int] = []

    def on_signal(signum, _frame):
        first = not stopped_by
        stopped_by.append(signum)
        group.stop() if first else group.abort()

    restore: Callable[[], object] | None = None
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        restore = lambda: [signal.signal(s, h) for s, h in old.items()]  # noqa: E731
    try:
        group.start()
        while not group.wait(timeout=POLL_S):  # a timed wait: the main thread must get back to its handler
            pass
    finally:
        if restore:
            restore()
    return stopped_by[0] if stopped_by else None


def describe_lane(lane: Lane, target_fps: float | None = None) -> str:
    """One summary line for a source."""
    head = f"{lane.label} ({redact(lane.uri)}): "
    s = lane.stats
    if lane.error is not None or s is None:  # no error and no numbers: a source that never opened
        return head + f"error: {lane.error}"
    flags = [w for w, on in (("source LOST", s.source_lost), ("ended early", s.ended_early), ("interrupted", s.interrupted)) if on]
    if target_fps:
        flags.append(f"target {target_fps:g} {'met' if s.fps >= target_fps else 'NOT met'}")
    return (
        head + f"frames in {s.frames_in}, out {s.frames_out}, dropped {s.dropped}; {s.fps:.1f} FPS over "
        f"{s.seconds:.1f} s" + (f" ({', '.join(flags)})" if flags else "")
    )


def report(request: RunSettings, group: SourceGroup, seconds: float, model: str) -> None:
    """The per-source summary and outputs, one combined line, and --stats."""
    from ..runtime.outputs import describe_outputs

    lanes = group.lanes
    done = [lane.stats for lane in lanes if lane.stats is not None]
    for lane in lanes:
        s = lane.stats
        if lane.error is not None:
            log.error(f"rtseg: error: source {lane.label}: {lane.error}")
        elif s is not None and s.source_lost:
            log.warning(f"rtseg: live source lost: {redact(lane.uri)} did not come back")
        elif s is not None and s.ended_early:
            log.warning(f"rtseg: input ended early: {redact(lane.uri)} gave {s.frames_in} of the {s.expected_frames} frames it announced")
    for lane in lanes:
        log.info(describe_lane(lane, request.target_fps))
        for line in describe_outputs([s for s in lane.pipeline.sinks if s is not lane.feed] if lane.pipeline else []):
            log.info(f"  wrote {line}")
    frames_in, frames_out = sum(x.frames_in for x in done), sum(x.frames_out for x in done)
    dropped = sum(x.dropped for x in done)
    log.info(
        f"all {len(lanes)} sources: frames in {frames_in}, out {frames_out}, dropped {dropped}; "
        f"{frames_out / seconds if seconds > 0 else 0.0:.1f} FPS combined over {seconds:.1f} s"
    )
    switches: list[dict] = group.runner.switches if group.runner else []
    for e in switches:
        log.info(f"  switch at {e['t']:.1f}s: {e['from']} -> {e['to']} (slowest source {e['rate']:.1f} FPS, target {e['target']:g})")
    if request.stats:
        doc = {
            "model": model,
            "seconds": round(seconds, 3),
            "frames_in": frames_in,
            "frames_out": frames_out,
            "dropped": dropped,
            "target_fps": request.target_fps,
            "switches": switches,
            "sources": {
                x.label: {"source": redact(x.uri), "exit_code": x.code(), "error": redact(str(x.error)) if x.error else None}
                | (x.stats.to_dict() if x.stats else {})
                for x in lanes
            },
        }
        from ..runtime.output_plan import write_atomically

        write_atomically(Path(request.stats), json.dumps(doc, indent=2) + "\n", "--stats")


def run_many(request: RunSettings, sources: list[str], output_dir: str | None) -> int:
    """`rtseg run SRC1 SRC2 ... --output-dir DIR [--serve PORT]`: every source through its own pipeline, one
    model shared (named, or chosen so that every source holds --target-fps).

    Returns the exit status: 128 + the signal when Ctrl-C / SIGTERM stopped the run, else the worst source's
    (a lost live source 4, a file that ended early 3, an error 1, else 0).
    """
    named = expand_sources(sources)
    refuse_one_source_options(request, named, output_dir)
    folder = check_output_dir(output_dir) if output_dir is not None else None
    if request.stats:
        from ..runtime.sinks import require_writable

        require_writable(Path(request.stats), "--stats")
    serve = request.sinks.serve
    group = SourceGroup(request, named, folder, live_view=bool(serve))
    server = None
    try:
        if folder is not None:
            refuse_inputs_in(folder, group.lanes)
        slot = group.load(choose_for_group)
        if serve:
            from ..runtime.http_view import FeedHub, LiveServer

            server = LiveServer(serve, FeedHub(group.feeds()), access=request.sinks.serve_access)
    except BaseException:
        group.close()  # sinks already opened are closed, so no half-made file stays locked open
        raise
    if request.backend.why:
        log.info(f"rtseg: backend auto: {request.backend.why}")
    if group.why:
        keep = (
            "kept held while running: every source moves to another model together"
            if group.runner
            else "chosen once (--no-adapt, or no other model to move to)"
        )
        log.info(f"rtseg: selector: {group.why}; one model for all the sources, {keep}")
    if request.sinks.show:
        log.info(
            "rtseg: no window with several sources (a window wants the main thread, which waits for all "
            "sources): watch them with --serve PORT"
        )
    where = f"outputs in {folder}" if folder else "no files written"
    log.info(
        f"rtseg: {slot.name} ({slot.pre.height}x{slot.pre.width}, {slot.backend.name}) shared by "
        f"{len(group.lanes)} sources, {group.streams} stream(s) x {group.threads} thread(s) each, {where}"
    )
    if server is not None:
        log.info(f"rtseg: live view of every source on {server.url} (each at {server.url}<label>/, numbers at {server.url}stats.json)")
    for lane in group.lanes:
        src = lane.source
        assert src is not None, "a group that is not tolerant has opened every source"
        kind = "live" if src.live else f"{src.frame_count or '?'} frames"
        log.info(f"  {lane.label}: {redact(src.name)} ({kind})")
    t0 = time.perf_counter()
    try:
        signum = run_with_signals(group)
    finally:
        if server is not None:
            server.close()
        group.close()  # the one backend, once every pipeline is done with it
    report(request, group, time.perf_counter() - t0, slot.name)
    return 128 + signum if signum else max(lane.code() for lane in group.lanes)
