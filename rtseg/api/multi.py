"""Many sources in one process: one pipeline per source, one loaded model for them all.

`rtseg run SRC1 SRC2 ... --output-dir DIR` comes here. The model is loaded once; each source gets a slot of its
own around that one backend (`ModelSlot.around`), because a slot's preprocessor holds the buffers frames are
resized into and its pool bounds the frames in flight: shared, one source's frames could be written over by
another's, and a stalled source could hold the pool the others need. ONNX Runtime sessions are thread-safe,
so every pipeline's inference calls the same session concurrently.

Each pipeline runs in a thread of its own, so a source that stalls, reconnects or dies holds back no other;
the main thread only waits, and takes Ctrl-C / SIGTERM once for all (stop every pipeline, drain, close every
output). Everything that can be refused is refused before the model loads.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..core.errors import RtsegError
from ..core.modelinfo import resolve_model
from ..runtime.channels import POLL_S
from ..runtime.outputs import SinkRequest, build_sinks, describe_outputs
from ..runtime.pipeline import Pipeline
from ..runtime.slot import ModelSlot, load_slot
from ..runtime.sources import CAMERA_URI, STREAM_SCHEMES, Source, open_input, unique_labels
from ..runtime.stats import RunStats

if TYPE_CHECKING:
    from ..cli import RunRequest

log = logging.getLogger(__name__)



@dataclass
class Lane:
    """One source's share of the run: its pipeline, and how it ended."""

    label: str
    uri: str
    source: Source
    pipeline: Pipeline | None = None
    stats: RunStats | None = None
    error: BaseException | None = None

    def code(self) -> int:
        """This source's exit status, by the rules of a one-source `rtseg run`."""
        return 1 if self.error is not None else self.stats.exit_code


# -- refusals, before any work -----------------------------------------------------------------------
def refuse_one_source_options(request: "RunRequest", sources: list[str], output_dir: str | None) -> None:
    """Options that name one output, or one rate, are refused with several sources (and with --output-dir,
    which names every output itself)."""
    if not sources:
        raise RtsegError("give at least one SOURCE (a camera as camera://N)")
    many = len(sources) > 1
    where = "with several sources" if many else "with --output-dir"
    if output_dir is None:
        raise RtsegError("several sources need --output-dir DIR: each source's overlay (and, with --json, its "
                         "JSON lines) is written there as <label>.mp4 / <label>.jsonl")
    if request.camera is not None:
        raise RtsegError(f"--camera {where}: give the camera as a SOURCE instead (camera://N or /dev/videoN)")
    sinks = request.sinks
    for flag, value in (("--output", sinks.output), ("--save-masks", sinks.save_masks), ("--serve", sinks.serve)):
        if value:
            raise RtsegError(f"{flag} works with one source and no --output-dir ({where}, each source's overlay "
                             "goes to DIR/<label>.mp4)")
    if isinstance(sinks.json_lines, str):
        raise RtsegError(f"--json FILE (here {sinks.json_lines}) works with one source and no --output-dir ({where}, "
                         "give --json alone, after the sources: each source's lines go to DIR/<label>.jsonl)")
    if request.target_fps is not None:
        raise RtsegError("--target-fps works with one source and no --output-dir (choosing one model for several "
                         "sources is future work): give --model")


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
        inside = next((f for f in lane.source.files if Path(f).resolve().parent == folder), None)
        if inside is not None:
            raise RtsegError(f"--output-dir {folder} holds input {Path(inside).name} (source {lane.uri}): give "
                             "the outputs a folder of their own")


# -- labels ------------------------------------------------------------------------------------------
def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "source"


def source_labels(sources: list[str]) -> list[str]:
    """A name per source for its output files, unique in the run: files by `unique_labels` (the stem, widened
    where stems repeat), cameras as cam<N>, URLs as host_port_path (`127.0.0.1_8080_cam`)."""
    labels: list[str | None] = [None] * len(sources)
    files = []
    for i, uri in enumerate(sources):
        if m := CAMERA_URI.fullmatch(uri):
            labels[i] = f"cam{m.group(1) or m.group(2)}"
        elif uri.startswith(STREAM_SCHEMES):
            rest = uri.split("://", 1)[1].split("?", 1)[0]
            labels[i] = _sanitize(os.path.splitext(rest)[0].replace(":", "_").replace("/", "_"))
        else:
            files.append(i)
    for i, label in zip(files, unique_labels([Path(sources[i]) for i in files])):
        labels[i] = _sanitize(label)  # a glob's stem ('*') is no file name
    out, taken = [], set()
    for label in labels:  # the same camera or URL twice, or a file named like a camera's label
        name, n = label, 2
        while name in taken:
            name, n = f"{label}_{n}", n + 1
        taken.add(name)
        out.append(name)
    return out


# -- the run -----------------------------------------------------------------------------------------
def open_lanes(request: "RunRequest", sources: list[str]) -> list[Lane]:
    """Every source opened now, each wrapped as alone (--loop, --frames, --realtime, its own --reconnect);
    one that cannot open is refused by name, and those already open are closed again."""
    lanes: list[Lane] = []
    try:
        for uri, label in zip(sources, source_labels(sources)):
            try:
                source = open_input(uri, None, request.loop, request.frames, request.realtime, request.reconnect)
            except RtsegError as e:
                raise RtsegError(str(e) if uri in str(e) else f"source {uri}: {e}") from e
            lanes.append(Lane(label, uri, source))
    except BaseException:
        close_sources(lanes)
        raise
    return lanes


def close_sources(lanes: list[Lane]) -> None:
    for lane in lanes:
        if lane.pipeline is None:  # a pipeline closes its own source
            lane.source.close()


def wire(request: "RunRequest", lanes: list[Lane], folder: Path, first: ModelSlot, streams: int) -> None:
    """A pipeline per lane: its own slot around the one backend, its own sinks in `folder`."""
    choice, pool = request.choice, request.queue_size + streams + 2
    for i, lane in enumerate(lanes):
        slot = first if i == 0 else ModelSlot.around(first.info, first.backend, first.input_size, choice.alpha,
                                                     choice.score_threshold, pool, choice.legend)
        sinks = SinkRequest(output=str(folder / f"{lane.label}.mp4"),
                            json_lines=str(folder / f"{lane.label}.jsonl") if request.sinks.json_lines else None,
                            show=False, quiet=request.quiet, codec=request.sinks.codec)
        opened = build_sinks(sinks, lane.source, first.info, lambda: None)  # no window: nothing asks to stop
        lane.pipeline = Pipeline(lane.source, slot, opened, queue_size=request.queue_size, streams=streams)


def run_lanes(lanes: list[Lane]) -> int | None:
    """Every pipeline in a thread of its own, to its end; returns the signal that stopped the run, if one did.

    The main thread keeps the signals: the first stops every pipeline (each drains and closes its outputs),
    a second aborts them all (outputs are still closed)."""
    stopped_by: list[int] = []

    def on_signal(signum, _frame):
        first = not stopped_by
        stopped_by.append(signum)
        for lane in lanes:
            lane.pipeline.stop() if first else lane.pipeline.abort()

    def run(lane: Lane) -> None:
        try:
            lane.stats = lane.pipeline.run(handle_signals=False)
        except BaseException as e:  # this source's failure is reported with it; the others go on
            lane.error = e

    restore: Callable[[], object] | None = None
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        restore = lambda: [signal.signal(s, h) for s, h in old.items()]  # noqa: E731
    threads = [threading.Thread(target=run, args=(lane,), name=f"source-{lane.label}", daemon=True) for lane in lanes]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():  # a timed join: the main thread must get back to its signal handler
                t.join(timeout=POLL_S)
    finally:
        if restore:
            restore()
    return stopped_by[0] if stopped_by else None


def describe_lane(lane: Lane) -> str:
    """One summary line for a source."""
    head = f"{lane.label} ({lane.uri}): "
    if lane.error is not None:
        return head + f"error: {lane.error}"
    s = lane.stats
    flags = [w for w, on in (("source LOST", s.source_lost), ("ended early", s.ended_early),
                              ("interrupted", s.interrupted)) if on]
    return (head + f"frames in {s.frames_in}, out {s.frames_out}, dropped {s.dropped}; {s.fps:.1f} FPS over "
            f"{s.seconds:.1f} s" + (f" ({', '.join(flags)})" if flags else ""))


def report(request: "RunRequest", lanes: list[Lane], seconds: float, model: str) -> None:
    """The per-source summary and outputs, one combined line, and --stats."""
    done = [lane for lane in lanes if lane.stats is not None]
    for lane in lanes:
        if lane.error is not None:
            log.error(f"rtseg: error: source {lane.label}: {lane.error}")
        elif lane.stats.source_lost:
            log.warning(f"rtseg: live source lost: {lane.uri} did not come back")
        elif lane.stats.ended_early:
            log.warning(f"rtseg: input ended early: {lane.uri} gave {lane.stats.frames_in} of the "
                        f"{lane.stats.expected_frames} frames it announced")
    for lane in lanes:
        log.info(describe_lane(lane))
        for line in describe_outputs(lane.pipeline.sinks):
            log.info(f"  wrote {line}")
    frames_in, frames_out = sum(x.stats.frames_in for x in done), sum(x.stats.frames_out for x in done)
    dropped = sum(x.stats.dropped for x in done)
    log.info(f"all {len(lanes)} sources: frames in {frames_in}, out {frames_out}, dropped {dropped}; "
             f"{frames_out / seconds if seconds > 0 else 0.0:.1f} FPS combined over {seconds:.1f} s")
    if request.stats:
        doc = {"model": model, "seconds": round(seconds, 3), "frames_in": frames_in, "frames_out": frames_out,
               "dropped": dropped,
               "sources": {x.label: {"source": x.uri, "exit_code": x.code(), "error": str(x.error) if x.error else None}
                           | (x.stats.to_dict() if x.stats else {}) for x in lanes}}
        Path(request.stats).write_text(json.dumps(doc, indent=2) + "\n")


def run_many(request: "RunRequest", sources: list[str], output_dir: str | None) -> int:
    """`rtseg run SRC1 SRC2 ... --output-dir DIR`: every source through its own pipeline, one model shared.

    Returns the exit status: 128 + the signal when Ctrl-C / SIGTERM stopped the run, else the worst source's
    (a lost live source 4, a file that ended early 3, an error 1, else 0).
    """
    refuse_one_source_options(request, sources, output_dir)
    folder = check_output_dir(output_dir)
    if request.stats:
        from ..runtime.sinks import require_writable

        require_writable(Path(request.stats), "--stats")
    lanes = open_lanes(request, sources)
    first = None
    try:
        refuse_inputs_in(folder, lanes)
        # inference in parallel across sources already: one stream each, the cores shared out between them
        streams = request.streams or 1
        threads = request.threads or max(1, (os.cpu_count() or 1) // (len(lanes) * streams))
        choice, backend = request.choice, request.backend
        first = load_slot(resolve_model(choice.model), backend.name, threads=threads, input_size=choice.input_size,
                          alpha=choice.alpha, score_threshold=choice.score_threshold, legend=choice.legend,
                          pool_size=request.queue_size + streams + 2, **backend.options())
        if backend.why:
            log.info(f"rtseg: backend auto: {backend.why}")
        wire(request, lanes, folder, first, streams)
    except BaseException:
        for lane in lanes:  # sinks already opened are closed, so no half-made file stays locked open
            for sink in lane.pipeline.sinks if lane.pipeline else []:
                sink.close()
            lane.source.close()
        if first is not None:
            first.close()
        raise
    if request.sinks.show:
        log.info("rtseg: no window with --output-dir (a window wants the main thread, which waits for all sources)")
    log.info(f"rtseg: {first.name} ({first.pre.height}x{first.pre.width}, {first.backend.name}) shared by "
             f"{len(lanes)} sources, {streams} stream(s) x {threads} thread(s) each, outputs in {folder}")
    for lane in lanes:
        kind = "live" if lane.source.live else f"{lane.source.frame_count or '?'} frames"
        log.info(f"  {lane.label}: {lane.source.name} ({kind})")
    t0 = time.perf_counter()
    try:
        signum = run_lanes(lanes)
    finally:
        first.close()  # the one backend, once every pipeline is done with it
    report(request, lanes, time.perf_counter() - t0, first.name)
    return 128 + signum if signum else max(lane.code() for lane in lanes)
