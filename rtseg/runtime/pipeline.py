"""The threaded pipeline: capture -> preprocess -> infer -> postprocess -> sinks.

Each stage runs in its own thread (the sinks in the calling thread, because GUI toolkits want the main
thread), joined by small bounded queues, so decoding, inference and drawing overlap. OpenCV, NumPy and
ONNX Runtime release the GIL while they work, which is what makes threads enough here.

Files: nothing is dropped; a full queue blocks the stage before it (back-pressure), every input frame
becomes one output frame, in order. Live sources: the capture stage keeps only the newest frame in a
one-slot mailbox, and preprocess takes a frame only when inference can accept it, so latency stays at
about one frame per stage whatever the camera's rate.
"""
from __future__ import annotations

import os
import queue
import signal
import threading
import time
from typing import Callable

from tqdm import tqdm

from .frame import FrameRecord
from .postprocess import class_map
from .sinks import Sink, WindowSink
from .slot import ModelSlot
from .sources import Source
from .stats import RateMeter, RunStats

_END = object()   # sentinel that flows down the queues after the last frame
_POLL_S = 0.05    # how often blocked stages look at the abort flag


def inference_layout(streams: int | None, threads: int | None, live: bool) -> tuple[int, int]:
    """How many frames infer in parallel, and threads per frame.

    Files want throughput: several frames at once on a few threads each beats one frame on every core
    (no waiting on the slowest thread; measured in benchmarks/pipeline_speed.py). Live sources want the
    newest frame done soonest: one stream on all cores.
    """
    cores = os.cpu_count() or 1
    if streams is None:
        streams = 1 if live else max(1, min(4, cores))
    if threads is None:
        threads = max(1, cores // streams)
    return streams, threads


class NewestSlot:
    """A one-item mailbox whose `put` replaces an item not yet taken: readers always get the newest."""

    def __init__(self):
        self._cv = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0

    def put(self, item) -> None:
        with self._cv:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def get(self, timeout: float) -> object:
        """The newest item, `_END` once closed and empty; raises queue.Empty on timeout."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._item is not None or self._closed, timeout):
                raise queue.Empty
            if self._item is None:
                return _END
            item, self._item = self._item, None
            return item


class ReorderBuffer:
    """Collects results of parallel inference streams and releases them in sequence order."""

    def __init__(self, producers: int):
        self._cv = threading.Condition()
        self._items: dict[int, object] = {}
        self._next = 0
        self._open_producers = producers

    def put(self, seq: int, item) -> None:
        with self._cv:
            self._items[seq] = item
            self._cv.notify_all()

    def producer_done(self) -> None:
        with self._cv:
            self._open_producers -= 1
            self._cv.notify_all()

    def get(self, timeout: float) -> object:
        """The next item in order, `_END` once every producer is done and nothing is left."""
        with self._cv:
            ready = lambda: self._next in self._items or (self._open_producers == 0 and not self._items)  # noqa: E731
            if not self._cv.wait_for(ready, timeout):
                raise queue.Empty
            if self._next not in self._items:
                return _END
            item = self._items.pop(self._next)
            self._next += 1
            return item


class Pipeline:
    def __init__(self, source: Source, slot: ModelSlot, sinks: list[Sink], queue_size: int = 2, streams: int = 1,
                 progress: bool = False, on_frame: Callable[[FrameRecord], None] | None = None):
        self.source, self.slot, self.sinks = source, slot, sinks
        self.live = source.live
        self.progress = progress
        self.on_frame = on_frame
        self.stats = RunStats()
        self.meter = RateMeter(1.0)
        self._stop = threading.Event()    # graceful: stop reading, drain what is in flight
        self._abort = threading.Event()   # immediate: an error, or a second Ctrl-C
        self._error: BaseException | None = None
        self._source_ended = False
        self.stop_signal: int | None = None  # the signal that stopped the run, if one did
        self._hud_note: tuple[str, float] | None = None  # a message shown in the HUD until a time
        size = 1 if self.live else queue_size
        self._captured = NewestSlot() if self.live else queue.Queue(size)
        self._preprocessed: queue.Queue = queue.Queue(size)
        # `streams` inference threads share the backend (ONNX Runtime sessions are thread-safe): on few
        # cores, frames in parallel on one thread each beat one frame on all threads (no straggler waits).
        self.streams = max(1, streams)
        self._inferred = ReorderBuffer(self.streams)
        self._seq = 0  # order of frames entering inference (live sources skip dropped frame indices)
        self._done: queue.Queue = queue.Queue(size)

    # -- control -----------------------------------------------------------------------------------
    def switch_to(self, slot: ModelSlot) -> None:
        """Frames read from now on use `slot`; frames in flight finish with the one they started with."""
        self.slot = slot

    def stop(self) -> None:
        """Stop reading; frames already read are still processed and written."""
        self._stop.set()

    def abort(self) -> None:
        self._stop.set()
        self._abort.set()

    def _fail(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e
        self.abort()

    # -- queue helpers that never block past an abort ---------------------------------------------
    def _put(self, q: queue.Queue, item) -> None:
        while not self._abort.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _get(self, q) -> object:
        while not self._abort.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    # -- stages ------------------------------------------------------------------------------------
    def _capture(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                got = self.source.read()
                if got is None:
                    self._source_ended = True
                    break
                frame, source_time, label = got
                t1 = time.perf_counter()
                rec = FrameRecord(index, frame, source_time, label, t_captured=t1)
                rec.ms["capture"] = (t1 - t0) * 1e3
                index += 1
                self.stats.frames_in += 1
                if self.live:
                    self._captured.put(rec)
                else:
                    self._put(self._captured, rec)
        except BaseException as e:
            self._fail(e)
        finally:
            if self.live:
                self._captured.close()
            else:
                self._put(self._captured, _END)

    def _stage(self, name: str, work: Callable[[FrameRecord], None], inq, outq: queue.Queue,
               wait_for_room: bool = False) -> None:
        try:
            while True:
                if wait_for_room:
                    # live: take the newest frame only once the next stage can accept it
                    while outq.full() and not self._abort.is_set():
                        time.sleep(0.001)
                rec = self._get(inq)
                if rec is _END:
                    break
                t0 = time.perf_counter()
                work(rec)
                rec.ms[name] = (time.perf_counter() - t0) * 1e3
                self._put(outq, rec)
        except BaseException as e:
            self._fail(e)
        finally:
            self._put(outq, _END)

    def _preprocess(self, rec: FrameRecord) -> None:
        rec.slot = self.slot
        rec.model = rec.slot.name
        rec.input = rec.slot.pre(rec.image)
        rec.seq, self._seq = self._seq, self._seq + 1

    def _infer_stream(self) -> None:
        """One inference stream: frames may finish out of order; the reorder buffer restores it."""
        try:
            while True:
                rec = self._get(self._preprocessed)
                if rec is _END:
                    self._put(self._preprocessed, _END)  # let the other streams see the end too
                    break
                t0 = time.perf_counter()
                self._infer(rec)
                rec.ms["infer"] = (time.perf_counter() - t0) * 1e3
                self._inferred.put(rec.seq, rec)
        except BaseException as e:
            self._fail(e)
        finally:
            self._inferred.producer_done()

    def _infer(self, rec: FrameRecord) -> None:
        try:
            rec.outputs = rec.slot.backend.infer(rec.input)
        finally:
            rec.slot.pre.pool.release(rec.input)
            rec.input = None

    def _postprocess(self, rec: FrameRecord) -> None:
        post, pre = rec.slot.post, rec.slot.pre
        frame_size = (rec.image.shape[1], rec.image.shape[0])
        small = class_map(rec.outputs)
        if small is not None:
            rec.shares = post.class_shares(small)
            rec.mask = post.resize_mask(small, frame_size)
        rec.detections = post.detections(rec.outputs, (pre.height, pre.width), frame_size)
        rec.overlay = post.overlay(rec.image, rec.mask, rec.detections)
        rec.outputs = None

    def _hud_lines(self) -> list[str]:
        ms = {s: v[-1] if v else 0.0 for s, v in self.stats.stage_ms.items()}
        lines = [f"{self.meter.fps:5.1f} FPS  {self.slot.name}  [{self.slot.backend.name}]",
                 "cap {capture:.1f}  pre {preprocess:.1f}  inf {infer:.1f}  post {postprocess:.1f}  out {sink:.1f} ms".format(**ms)]
        if self._hud_note and time.perf_counter() < self._hud_note[1]:
            lines.append(self._hud_note[0])
        return lines

    def _sink_loop(self) -> None:
        windows = [s for s in self.sinks if isinstance(s, WindowSink)]
        bar = tqdm(total=self.source.frame_count, unit="frame", dynamic_ncols=True, disable=not self.progress,
                   desc="rtseg", leave=False)
        t_first, last_model = None, None
        try:
            while True:
                rec = self._get(self._done)
                if rec is _END:
                    break
                t0 = time.perf_counter()
                if rec.model != last_model and last_model is not None:
                    rec.event = {"switch": {"from": last_model, "to": rec.model}}
                    self._hud_note = (f"switched to {rec.model}", t0 + 3.0)
                last_model = rec.model
                for w in windows:
                    w.hud = self._hud_lines()
                for sink in self.sinks:
                    sink.write(rec)
                    # running total, so a JSON sink placed last reports the time of the sinks before it
                    rec.ms["sink"] = (time.perf_counter() - t0) * 1e3
                t1 = time.perf_counter()
                rec.ms["sink"] = (t1 - t0) * 1e3
                self._account(rec, t1)
                t_first = t_first or rec.t_captured - rec.ms["capture"] / 1e3
                self.stats.seconds = t1 - t_first
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

    def _account(self, rec: FrameRecord, t_done: float) -> None:
        s = self.stats
        s.frames_out += 1
        s.frames_by_model[rec.model] = s.frames_by_model.get(rec.model, 0) + 1
        for name, v in rec.ms.items():
            s.stage_ms[name].append(v)
        # from the frame being available to its results written: decoding counts for files, but a live
        # source's read() mostly waits for the camera's next frame, which is not latency we add
        s.latency_ms.append((t_done - rec.t_captured) * 1e3 + (0.0 if self.live else rec.ms["capture"]))
        self.meter.tick(t_done)

    # -- run ---------------------------------------------------------------------------------------
    def run(self, handle_signals: bool = True) -> RunStats:
        """Process the source to its end (or until stopped); returns the statistics."""
        threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                   threading.Thread(target=self._stage, name="preprocess", daemon=True,
                                    args=("preprocess", self._preprocess, self._captured, self._preprocessed, self.live))]
        threads += [threading.Thread(target=self._infer_stream, name=f"infer-{i}", daemon=True) for i in range(self.streams)]
        threads.append(threading.Thread(target=self._stage, name="postprocess", daemon=True,
                                        args=("postprocess", self._postprocess, self._inferred, self._done)))
        restore = self._install_signal_handlers() if handle_signals else None
        try:
            for t in threads:
                t.start()
            self._sink_loop()
            for t in threads:
                while t.is_alive():
                    t.join(timeout=_POLL_S)
        finally:
            if restore:
                restore()
            self.source.close()
        if self.live:
            self.stats.dropped = self._captured.dropped
        self.stats.interrupted = self._stop.is_set() and not self._source_ended
        self.stats.skipped_inputs = list(getattr(self.source, "skipped", []))
        if self._error is not None:
            raise self._error
        return self.stats

    def _install_signal_handlers(self):
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
