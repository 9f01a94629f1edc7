"""The capture stage: reads the source, makes each frame's record, and hands it on (preprocessed in place for a
file's frames on few cores); whichever of it and the run finishes last closes the source, never during a read."""

from __future__ import annotations

import threading
import time
from typing import Callable

from .channels import END
from .frame import FrameRecord
from .run_control import RunControl
from .sources import Captured, Source
from .stats import RunStats
from .timing import stage


class Capture:
    """`run` is the capture thread. `out` is the next stage's channel: a live source's newest-frame mailbox, a
    file's bounded queue, or (with `preprocess`) inference's queue directly."""

    def __init__(
        self, source: Source, stats: RunStats, control: RunControl, out, preprocess: Callable[[FrameRecord], None] | None, live: bool
    ):
        self.source, self.stats, self.control, self.out = source, stats, control, out
        self.preprocess, self.live = preprocess, live
        self.ended = False  # the source ended by itself (a read cut short by a stop is no end)
        # a live read may block (a stalled stream) past a stop: the run does not wait for it
        self._lock = threading.Lock()
        self._done = False
        self._abandoned = False

    def run(self) -> None:
        index, control = 0, self.control
        try:
            while not control.stopping.is_set():
                t0 = time.perf_counter()  # timed by hand: the record is made from what the read returns
                got = self.source.read()
                if got is None:
                    self.ended = not control.stopping.is_set()
                    break
                got = Captured(*got)
                rec = FrameRecord(
                    index, got.frame, got.time, got.label, t_captured=time.perf_counter(), file=got.file, event=got.event, i420=got.i420
                )
                rec.ms["capture"] = (rec.t_captured - t0) * 1e3
                index += 1
                self.stats.frames_in += 1
                if self.preprocess is not None:
                    with stage(rec, "preprocess"):
                        self.preprocess(rec)
                # blocks while the next stage is behind (back-pressure); a live mailbox drops the stale frame instead
                control.io.put(self.out, rec)
        except BaseException as e:
            control.fail(e)
        finally:
            if self.live:
                self.out.close()
            else:
                control.io.put(self.out, END)
            with self._lock:
                self._done = True
                if self._abandoned:
                    self.source.close()

    def close_source(self, thread: threading.Thread) -> None:
        """The run is over: close the source now, or leave it to the capture thread still blocked in a read."""
        with self._lock:
            if self._done or not thread.is_alive():
                self.source.close()
            else:
                self._abandoned = True
