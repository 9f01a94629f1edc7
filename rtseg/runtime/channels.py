"""What joins the pipeline's stages: bounded queues, a newest-frame mailbox and a reorder buffer.

They live apart from the pipeline so that its class says only which stage feeds which. Every wait here
is short and repeated (`POLL_S`), because a stage blocked for good on a full or empty channel would
never see an error elsewhere or a second Ctrl-C.
"""

from __future__ import annotations

import queue
import threading
import time

END = object()  # sentinel that flows down the channels after the last frame
POLL_S = 0.05  # how often a blocked stage looks at the abort flag


class NewestSlot:
    """A one-item mailbox whose `put` replaces an item not yet taken: readers always get the newest."""

    def __init__(self, merge=None) -> None:
        self._cv = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0
        # merge(stale, newest): what a replaced item must hand on to the one replacing it (a frame's event)
        self._merge = merge

    def put(self, item, timeout: float | None = None) -> None:
        """Never blocks (so `timeout` is unused): a live source must not wait for a slow model. A frame put
        after `close` (read while the run was stopping) is counted as dropped: no stage will take it."""
        with self._cv:
            if self._closed:
                self.dropped += 1
                return
            if self._item is not None:
                self.dropped += 1
                if self._merge is not None:
                    self._merge(self._item, item)
            self._item = item
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def get(self, timeout: float) -> object:
        """The newest item, `END` once closed and empty; raises queue.Empty on timeout."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._item is not None or self._closed, timeout):
                raise queue.Empty
            if self._item is None:
                return END
            item, self._item = self._item, None
            return item


class ReorderBuffer:
    """Collects results of parallel inference streams and releases them in sequence order.

    It holds at most `window` sequence numbers ahead of the next one out: a stream whose frame is further
    ahead waits (`put` raises queue.Full on timeout), so a slow consumer holds the streams back instead of
    the buffer growing with every frame of a file. The frame due next always fits, so it cannot deadlock.
    """

    def __init__(self, producers: int, window: int | None = None) -> None:
        self._cv = threading.Condition()
        self._items: dict[int, object] = {}
        self._next = 0
        self._open_producers = producers
        self.window = window

    def put(self, seq: int, item, timeout: float | None = None) -> None:
        with self._cv:
            window = self.window  # read once: the wait's test below then knows it is not None
            if window is not None and not self._cv.wait_for(lambda: seq < self._next + window, timeout):
                raise queue.Full
            self._items[seq] = item
            self._cv.notify_all()

    def producer_done(self) -> None:
        with self._cv:
            self._open_producers -= 1
            self._cv.notify_all()

    def get(self, timeout: float) -> object:
        """The next item in order, `END` once every producer is done and nothing is left."""
        with self._cv:
            ready = lambda: self._next in self._items or (self._open_producers == 0 and not self._items)  # noqa: E731
            if not self._cv.wait_for(ready, timeout):
                raise queue.Empty
            if self._next not in self._items:
                return END
            item = self._items.pop(self._next)
            self._next += 1
            self._cv.notify_all()  # a stream waiting for the window may go on
            return item


class AbortAware:
    """Puts and gets on any channel that give up once `abort` is set, so no stage outlives a failure."""

    def __init__(self, abort: threading.Event) -> None:
        self.abort = abort

    def put(self, q, item, *key) -> None:
        """`q.put(item)`, or for a reorder buffer `q.put(seq, item)` (pass the seq as `key`)."""
        while not self.abort.is_set():
            try:
                q.put(*key, item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q) -> object:
        """The next item, or `END` when aborted: the stage then ends as if its input had."""
        while not self.abort.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return END

    def wait_for_room(self, q: queue.Queue) -> None:
        """Wait until `q` can take an item, so that a live stage takes its frame as late (as new) as it can."""
        while q.full() and not self.abort.is_set():
            time.sleep(0.001)
