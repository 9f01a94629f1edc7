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
import signal
import threading
import time
from typing import Callable

from tqdm import tqdm

from ..core.machine import usable_cpus
from ..temporal import Temporal
from .allocator import keep_frame_buffers
from .channels import END, POLL_S, AbortAware, NewestSlot, ReorderBuffer
from .frame import FrameRecord
from .sinks import Sink
from .slot import ModelSlot
from .sources import Captured, Source, ask_for_i420
from .stats import RunStats
from .timing import percentiles, stage


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


class Pipeline:
    """Wires a source, the current model slot and the sinks into threaded stages, and runs them.

    What joins the stages is in `channels`, what a frame costs is counted by `RunStats.record`, and what
    the sinks show (the HUD included) is theirs: this class only says which stage feeds which.
    """

    def __init__(self, source: Source, slot: ModelSlot, sinks: list[Sink], queue_size: int = 2, streams: int = 1,
                 progress: bool = False, on_frame: Callable[[FrameRecord], None] | None = None,
                 preprocess_in_capture: bool | None = None, i420: bool | None = None,
                 temporal: Temporal | None = None):
        self.source, self.slot, self.sinks = source, slot, sinks
        # key frames and smoothing (rtseg/temporal): planned in preprocess, carried in postprocess, both in order
        self.temporal = temporal
        self.live = source.live
        self.progress = progress
        self.on_frame = on_frame
        self.stats = RunStats()
        self._stop = threading.Event()    # graceful: stop reading, drain what is in flight
        self._abort = threading.Event()   # immediate: an error, or a second Ctrl-C
        self._io = AbortAware(self._abort)
        self._error: BaseException | None = None
        self._source_ended = False
        self.stop_signal: int | None = None  # the signal that stopped the run, if one did
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
        self._captured = NewestSlot(carry_event) if self.live else None if self.preprocess_in_capture else queue.Queue(size)
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
        # a live read may block (a stalled stream) past a stop: the run does not wait for it, and whichever of
        # the capture thread and the run finishes last closes the source (never during a read)
        self._source_lock = threading.Lock()
        self._capture_done = False
        self._source_abandoned = False
        for sink in sinks:
            sink.attach(self)

    def counts(self) -> dict:
        """Frames so far, while running: read, written, dropped (live) and the recent p95 latency."""
        dropped = self._captured.dropped if self.live else 0
        recent = list(self.stats.recent_latency_ms)
        counts = {"frames_in": self.stats.frames_in, "frames_out": self.stats.frames_out, "dropped": dropped,
                  "latency_ms_p95": round(percentiles(recent)["p95"], 2) if recent else None}
        if self.temporal is not None:  # key frames: how many frames the model ran on, and the interval now
            counts |= {"frames_inferred": self.stats.frames_inferred, "keyframe": str(self.temporal.keyframes.interval)}
        return counts

    # -- control -----------------------------------------------------------------------------------
    def switch_to(self, slot: ModelSlot, keyframes=None) -> None:
        """Frames read from now on use `slot` (and, with `keyframes`, that key-frame interval); frames in flight
        finish with the one they started with."""
        if keyframes is not None and self.temporal is not None:
            self.temporal.keyframes = keyframes
        self.slot = slot

    def stop(self) -> None:
        """Stop reading; frames already read are still processed and written."""
        self._stop.set()
        interrupt = getattr(self.source, "interrupt", None)  # optional: a reconnecting source stops waiting
        if interrupt:
            interrupt()
        if self.live:  # what is in flight finishes; a read still blocked on the camera is not waited for
            self._captured.close()

    def abort(self) -> None:
        """Stop every stage at once; the sinks are still closed."""
        self.stop()
        self._abort.set()

    def _fail(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e
        self.abort()

    # -- stages ------------------------------------------------------------------------------------
    def _capture(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                # timed by hand: the record is made from what the read returns
                t0 = time.perf_counter()
                got = self.source.read()
                if got is None:
                    self._source_ended = not self._stop.is_set()  # a read cut short by a stop is no end
                    break
                got = Captured(*got)
                rec = FrameRecord(index, got.frame, got.time, got.label, t_captured=time.perf_counter(), file=got.file,
                                  event=got.event, i420=got.i420)
                rec.ms["capture"] = (rec.t_captured - t0) * 1e3
                index += 1
                self.stats.frames_in += 1
                if self.preprocess_in_capture:
                    with stage(rec, "preprocess"):
                        self._preprocess(rec)
                    self._io.put(self._preprocessed, rec)  # blocks while inference is behind: back-pressure
                else:
                    self._io.put(self._captured, rec)  # a live mailbox never blocks: it drops the stale frame
        except BaseException as e:
            self._fail(e)
        finally:
            if self.live:
                self._captured.close()
            else:
                self._io.put(self._preprocessed if self.preprocess_in_capture else self._captured, END)
            with self._source_lock:
                self._capture_done = True
                if self._source_abandoned:
                    self.source.close()

    def _stage(self, name: str, work: Callable[[FrameRecord], None], inq, outq: queue.Queue,
               wait_for_room: bool = False) -> None:
        try:
            while True:
                if wait_for_room:
                    # live: take the newest frame only once the next stage can accept it
                    self._io.wait_for_room(outq)
                rec = self._io.get(inq)
                if rec is END:
                    break
                with stage(rec, name):
                    work(rec)
                self._io.put(outq, rec)
        except BaseException as e:
            self._fail(e)
        finally:
            self._io.put(outq, END)

    def _preprocess(self, rec: FrameRecord) -> None:
        rec.slot = self.slot  # read once: a switch mid-frame must not mix two models
        rec.model = rec.slot.name
        rec.seq, self._seq = self._seq, self._seq + 1
        if self.temporal is not None and not self.temporal.plan(rec):
            return  # a propagated frame: no model input, its outputs come from motion in postprocess
        rec.input = rec.slot.preprocess(rec.image) if rec.i420 is None else rec.slot.preprocess_i420(rec.i420)
        self._unreleased[rec.seq] = rec

    def _infer_stream(self) -> None:
        """One inference stream: frames may finish out of order; the reorder buffer restores it."""
        try:
            while True:
                rec = self._io.get(self._preprocessed)
                if rec is END:
                    self._io.put(self._preprocessed, END)  # let the other streams see the end too
                    break
                if rec.inferred:
                    with stage(rec, "infer"):
                        x, rec.input = rec.input, None
                        self._unreleased.pop(rec.seq, None)
                        rec.outputs = rec.slot.infer(x)  # gives the buffer back to the pool, whatever happens
                self._io.put(self._inferred, rec, rec.seq)
        except BaseException as e:
            self._fail(e)
        finally:
            self._inferred.producer_done()

    def _postprocess(self, rec: FrameRecord) -> None:
        if self.temporal is not None:
            self.temporal.carry(rec)
        if rec.i420 is None:
            p = rec.slot.postprocess(rec.image, rec.outputs, draw=True)
        else:
            p = rec.slot.postprocess_i420(rec.i420, rec.outputs, full_mask=False)  # rec.mask: made if a sink asks
        rec.mask, rec.shares, rec.detections, rec.outputs, rec.overlay = p.mask, p.shares, p.detections, p.outputs, p.overlay
        rec.overlay_i420 = p.overlay_i420

    def _sink_loop(self) -> None:
        bar = tqdm(total=self.source.frame_count, unit="frame", dynamic_ncols=True, disable=not self.progress,
                   desc="rtseg", leave=False)
        last_model = None
        try:
            while (rec := self._io.get(self._done)) is not END:
                if rec.model != last_model and last_model is not None:
                    rec.event = {**(rec.event or {}), "switch": {"from": last_model, "to": rec.model}}
                last_model = rec.model
                with stage(rec, "sink"):
                    for sink in self.sinks:
                        sink.write(rec)
                for sink in self.sinks:
                    sink.frame_done(rec)
                self.stats.record(rec, time.perf_counter(), self.live)
                if self.on_frame:
                    self.on_frame(rec)
                bar.update(1)
        except BaseException as e:
            self._fail(e)
        finally:
            bar.close()
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as e:  # one failing sink must not keep the others (the mp4) unfinished
                    self._fail(e)

    # -- run ---------------------------------------------------------------------------------------
    def _choose_i420(self) -> bool:
        """Frames in I420 when every sink takes them and the source can give them (asked last: it reopens).
        On 2 cores: decoding, preprocessing, blending and H.264 encoding took 1.1 ms a frame less (yuv_path.py)."""
        if self._i420_wanted is False or not all(getattr(s, "takes_i420", False) for s in self.sinks):
            return False
        return ask_for_i420(self.source)

    def run(self, handle_signals: bool = True) -> RunStats:
        """Process the source to its end (or until stopped); returns the statistics."""
        keep_frame_buffers()  # frame-sized arrays reused from the heap, not faulted in afresh each frame
        threads = [threading.Thread(target=self._capture, name="capture", daemon=True)]
        if not self.preprocess_in_capture:
            threads.append(threading.Thread(target=self._stage, name="preprocess", daemon=True,
                                            args=("preprocess", self._preprocess, self._captured, self._preprocessed,
                                                  self.live)))
        threads += [threading.Thread(target=self._infer_stream, name=f"infer-{i}", daemon=True) for i in range(self.streams)]
        threads.append(threading.Thread(target=self._stage, name="postprocess", daemon=True,
                                        args=("postprocess", self._postprocess, self._inferred, self._done)))
        restore = self._install_signal_handlers() if handle_signals else None
        try:
            self.frames_i420 = self._choose_i420()
            for t in threads:
                t.start()
            self._sink_loop()
            for t in threads:
                waited = 0.0
                while t.is_alive():
                    if t is threads[0] and self.live and self._stop.is_set() and waited >= 0.5:
                        break  # a live read blocked on a stalled source: it closes the source when it returns
                    t.join(timeout=POLL_S)
                    waited += POLL_S
        finally:
            if restore:
                restore()
            with self._source_lock:
                if self._capture_done or not threads[0].is_alive():
                    self.source.close()
                else:
                    self._source_abandoned = True
            for rec in list(self._unreleased.values()):  # dropped by an abort before inference
                if rec.input is not None:
                    rec.slot.pre.pool.release(rec.input)
                    rec.input = None
            self._unreleased.clear()
        if self.live:
            self.stats.dropped = self._captured.dropped
        self.stats.interrupted = self._stop.is_set() and not self._source_ended
        self.stats.expected_frames = None if self.live else self.source.frame_count
        self.stats.skipped_inputs = list(self.source.skipped)
        self.stats.temporal = self.temporal.summary() if self.temporal is not None else None
        self.stats.gaps = list(getattr(self.source, "gaps", []))  # a live source's outages, when it reports them
        self.stats.source_lost = bool(getattr(self.source, "lost", False))
        if self._error is not None:
            raise self._error
        return self.stats

    @property
    def failed(self) -> bool:
        """Whether a stage has failed (the run will end with that error)."""
        return self._error is not None

    def read_whole_input(self) -> bool:
        """Whether the source has ended by itself with every announced frame read and no error so far: only
        then may an output written aside replace its input (--overwrite)."""
        if self.live or not self._source_ended or self._error is not None or self.source.skipped:
            return False
        expected = self.source.frame_count
        return expected is None or self.stats.frames_in >= expected

    def _install_signal_handlers(self) -> Callable[[], object] | None:
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_signal(signum, _frame):
            self.stop_signal = self.stop_signal or signum
            if self._stop.is_set():
                self.abort()  # second signal: stop at once, still finalising the sinks
            else:
                self.stop()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]
