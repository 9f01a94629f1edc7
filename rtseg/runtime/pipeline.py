"""The threaded pipeline: capture -> preprocess -> infer -> postprocess -> sinks.

Each stage runs in its own thread (the sinks in the calling thread, because GUI toolkits want the main
thread), joined by small bounded queues, so decoding, inference and drawing overlap. On a machine with few
cores a file's frames are preprocessed in the thread that decoded them: one hand-off less a frame, with the
frame still in that core's cache. OpenCV, NumPy and ONNX Runtime release the GIL while they work, which is
what makes threads enough here. When every sink takes YUV 4:2:0 (an H.264 file, masks, JSON lines) and the
input is a file PyAV decodes to it, frames stay in I420 from decoding to encoding (runtime/yuv.py): an
`on_frame` callback then sees records whose `image` and `overlay` are None (`i420`, `overlay_i420` instead).

Files: nothing is dropped; a full queue blocks the stage before it (back-pressure), every input frame
becomes one output frame, in order. Live sources: the capture stage keeps only the newest frame in a
one-slot mailbox, and preprocess takes a frame only when inference can accept it, so latency stays at
about one frame per stage whatever the camera's rate.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, cast

import numpy as np

from ..core.machine import usable_cpus
from ..temporal import Temporal
from .allocator import keep_frame_buffers
from .capture import Capture
from .channels import POLL_S, NewestSlot, ReorderBuffer
from .delivery import deliver
from .frame import FrameRecord
from .run_control import RunControl
from .sinks import Sink
from .slot import ModelSlot
from .sources import Source, ask_for_i420
from .stages import infer_stream, relay
from .stats import RunStats


# Up to this many cores a file's frames are preprocessed in the thread that decodes them (see Pipeline)
INLINE_PREPROCESS_MAX_CORES = 4


def carry_event(stale: FrameRecord, newest: FrameRecord) -> None:
    """A live frame dropped for a newer one hands its event on (a reconnect after an outage): what happened to
    the stream must reach the outputs even when the frame it came with did not."""
    if stale.event:
        newest.event = {**stale.event, **(newest.event or {})}


def inference_layout(streams: int | None, threads: int | None, live: bool) -> tuple[int, int]:
    """How many frames infer in parallel, and threads per frame.

    Files want throughput: several frames at once on a few threads each beats one frame on every core
    (no waiting on the slowest thread; measured in benchmarks/pipeline_speed.py). Live sources want the
    newest frame done soonest: one stream on all cores.
    """
    cores = len(usable_cpus())  # the cores this process may run on (a container's share), not the host's
    if streams is None:
        streams = 1 if live else max(1, min(4, cores))
    if threads is None:
        threads = max(1, cores // streams)
    return streams, threads


def choose_i420(wanted: bool | None, sinks: list[Sink], source: Source) -> bool:
    """Frames in I420 when every sink takes them and the source can give them (asked last: it reopens).
    On 2 cores: decoding, preprocessing, blending and H.264 encoding took 1.1 ms a frame less (yuv_path.py)."""
    if wanted is False or not all(getattr(s, "takes_i420", False) for s in sinks):
        return False
    return ask_for_i420(source)


class Pipeline:
    """Wires a source, the current model slot and the sinks into threaded stages, and runs them.

    What joins the stages is in `channels`, how a run stops in `run_control`, the first and last stages in
    `capture` and `delivery`, what a frame costs is counted by `RunStats.record`, and what the sinks show (the
    HUD included) is theirs: this class says which stage feeds which, and does the model's part of a frame.
    """

    def __init__(
        self,
        source: Source,
        slot: ModelSlot,
        sinks: list[Sink],
        queue_size: int = 2,
        streams: int = 1,
        progress: bool = False,
        on_frame: Callable[[FrameRecord], None] | None = None,
        preprocess_in_capture: bool | None = None,
        i420: bool | None = None,
        temporal: Temporal | None = None,
    ):
        self.source, self.slot, self.sinks = source, slot, sinks
        # key frames and smoothing (rtseg/temporal): planned in preprocess, carried in postprocess, both in order
        self.temporal = temporal
        self.live = source.live
        self.progress = progress
        self.on_frame = on_frame
        self.stats = RunStats()
        self.control = RunControl()
        self.control.on_stop(self._stop_reading)
        size = 1 if self.live else queue_size
        # A file's frames preprocessed in the capture thread: on 2 cores the pipeline's own ceiling (null backend)
        # rose 415.1 -> 472.5 FPS, runs with a model unchanged (benchmarks/results/pipeline_ab3_cpu.md). Where
        # cores outnumber the busy stages, a thread of its own keeps decoding and preprocessing overlapped (a 4K
        # file's); live sources always keep it, behind the newest-frame mailbox.
        if preprocess_in_capture is None:
            preprocess_in_capture = len(usable_cpus()) <= INLINE_PREPROCESS_MAX_CORES
        self.preprocess_in_capture = preprocess_in_capture and not self.live  # the layout this run uses
        # frames in I420 (None: when the sinks and source allow, decided as the run starts; False: never)
        self._i420_wanted = i420
        self.frames_i420 = False  # what this run does
        # capture -> preprocess: a newest-frame mailbox (live), a bounded queue (files), or nothing (inline)
        self._captured: NewestSlot | queue.Queue | None = (
            NewestSlot(carry_event) if self.live else None if self.preprocess_in_capture else queue.Queue(size)
        )
        self._preprocessed: queue.Queue = queue.Queue(size)
        # `streams` inference threads share the backend (ONNX Runtime sessions are thread-safe): on few
        # cores, frames in parallel on one thread each beat one frame on all threads (no straggler waits).
        self.streams = max(1, streams)
        # bounded: a slow sink holds the streams back instead of the buffer filling with a file's frames
        self._inferred = ReorderBuffer(self.streams, window=self.streams + size)
        self._seq = 0  # order of frames entering inference (live sources skip dropped frame indices)
        self._done: queue.Queue = queue.Queue(size)
        # preprocessed inputs not yet inferred, by frame: an aborted run drops them in its channels, and
        # their pooled buffers must still go back (a Segmenter's slot outlives many runs)
        self._unreleased: dict[int, FrameRecord] = {}
        self.capture = Capture(
            source,
            self.stats,
            self.control,
            self._preprocessed if self.preprocess_in_capture else self._captured,
            self._preprocess if self.preprocess_in_capture else None,
            self.live,
        )
        for sink in sinks:
            sink.attach(self)

    def counts(self) -> dict:
        """Frames so far, while running: read, written, dropped (live) and the recent p95 latency."""
        return self.stats.counts(self._dropped, self.temporal)

    @property
    def _dropped(self) -> int:  # stale frames a live source's mailbox replaced; a file's frames are never dropped
        return cast(NewestSlot, self._captured).dropped if self.live else 0

    # -- control -----------------------------------------------------------------------------------
    def switch_to(self, slot: ModelSlot, keyframes=None) -> None:
        """Frames read from now on use `slot` (and, with `keyframes`, that key-frame interval); frames in flight
        finish with the one they started with."""
        if keyframes is not None and self.temporal is not None:
            self.temporal.keyframes = keyframes
        self.slot = slot

    def stop(self) -> None:
        """Stop reading; frames already read are still processed and written."""
        self.control.stop()

    def abort(self) -> None:
        """Stop every stage at once; the sinks are still closed."""
        self.control.abort()

    def _stop_reading(self) -> None:
        interrupt = getattr(self.source, "interrupt", None)  # optional: a reconnecting source stops waiting
        if interrupt:
            interrupt()
        if self.live:  # what is in flight finishes; a read still blocked on the camera is not waited for
            cast(NewestSlot, self._captured).close()

    @property
    def stop_signal(self) -> int | None:
        """The signal that stopped the run (SIGINT, SIGTERM), if one did."""
        return self.control.signal

    @property
    def failed(self) -> bool:
        """Whether a stage has failed (the run will end with that error)."""
        return self.control.error is not None

    # -- the model's part of a frame ---------------------------------------------------------------
    def _preprocess(self, rec: FrameRecord) -> None:
        rec.slot = self.slot  # read once: a switch mid-frame must not mix two models
        rec.model = rec.slot.name
        rec.seq, self._seq = self._seq, self._seq + 1
        if self.temporal is not None and not self.temporal.plan(rec):
            return  # a propagated frame: no model input, its outputs come from motion in postprocess
        rec.input = (
            rec.slot.preprocess(cast(np.ndarray, rec.image))
            if rec.i420 is None  # not in I420: in BGR
            else rec.slot.preprocess_i420(rec.i420)
        )
        self._unreleased[rec.seq] = rec

    def _postprocess(self, rec: FrameRecord) -> None:
        if self.temporal is not None:
            self.temporal.carry(rec)
        assert rec.slot is not None and rec.outputs is not None, "set by preprocess, and by inference or temporal"
        if rec.i420 is None:
            p = rec.slot.postprocess(cast(np.ndarray, rec.image), rec.outputs, draw=True)
        else:
            p = rec.slot.postprocess_i420(rec.i420, rec.outputs, full_mask=False)  # rec.mask: made if a sink asks
        rec.mask, rec.shares, rec.detections, rec.outputs, rec.overlay = p.mask, p.shares, p.detections, p.outputs, p.overlay
        rec.overlay_i420 = p.overlay_i420

    # -- run ---------------------------------------------------------------------------------------
    def run(self, handle_signals: bool = True) -> RunStats:
        """Process the source to its end (or until stopped); returns the statistics."""
        keep_frame_buffers()  # frame-sized arrays reused from the heap, not faulted in afresh each frame
        # each stage a thread: (name, work, arguments); `relay` runs a per-frame step between two channels
        stages: list[tuple[str, Callable[..., None], tuple]] = [("capture", self.capture.run, ())]
        if not self.preprocess_in_capture:
            args = ("preprocess", self._preprocess, self._captured, self._preprocessed, self.control, self.live)
            stages.append(("preprocess", relay, args))
        stages += [
            (f"infer-{i}", infer_stream, (self._preprocessed, self._inferred, self.control, self._unreleased)) for i in range(self.streams)
        ]
        stages.append(("postprocess", relay, ("postprocess", self._postprocess, self._inferred, self._done, self.control)))
        threads = [threading.Thread(target=work, name=name, args=args, daemon=True) for name, work, args in stages]
        capture = threads[0]
        restore = self.control.install_signal_handlers() if handle_signals else None
        try:
            self.frames_i420 = choose_i420(self._i420_wanted, self.sinks, self.source)
            for t in threads:
                t.start()
            deliver(self._done, self.sinks, self.stats, self.control, self.live, self.on_frame, self.source.frame_count, self.progress)
            join_stages(threads, capture if self.live else None, self.control.stopping)
        finally:
            if restore:
                restore()
            self.capture.close_source(capture)
            release_inputs(self._unreleased)
        self.stats.finish(
            self.source, self.temporal, dropped=self._dropped, interrupted=self.control.stopping.is_set() and not self.capture.ended
        )
        if self.control.error is not None:
            raise self.control.error
        return self.stats

    def read_whole_input(self) -> bool:
        """Whether the source has ended by itself with every announced frame read and no error so far: only
        then may an output written aside replace its input (--overwrite)."""
        if self.live or not self.capture.ended or self.failed or self.source.skipped:
            return False
        expected = self.source.frame_count
        return expected is None or self.stats.frames_in >= expected


def join_stages(threads: list[threading.Thread], live_capture: threading.Thread | None, stopping: threading.Event) -> None:
    """Every stage's thread to its end, in order; a live capture blocked on a stalled source is not waited for
    once the run is stopping (it closes the source when its read returns)."""
    for t in threads:
        waited = 0.0
        while t.is_alive():
            if t is live_capture and stopping.is_set() and waited >= 0.5:
                break
            t.join(timeout=POLL_S)
            waited += POLL_S


def release_inputs(unreleased: dict[int, FrameRecord]) -> None:
    """Give back the pooled buffers of preprocessed inputs an abort dropped before inference."""
    for rec in list(unreleased.values()):
        if rec.input is not None:
            cast(ModelSlot, rec.slot).pre.pool.release(rec.input)  # preprocess set both
            rec.input = None
    unreleased.clear()
