"""`ResultStream`: the threaded pipeline as an iterator of `Result`s.

The pipeline runs in a background thread; its last sink hands each finished frame to the iterator
through a small queue. Files: every frame, in order (a slow consumer slows the pipeline, nothing is
dropped). Live sources: the pipeline keeps only the newest frame, so a slow consumer sees fewer frames,
never older ones. Leaving the loop early (break, an exception, `close()`) stops the pipeline and
closes what it opened.
"""

from __future__ import annotations

import queue
import threading
from ..runtime.channels import AbortAware
from ..runtime.frame import FrameRecord
from ..runtime.sinks import Sink
from ..runtime.stats import RunStats
from .result import Result
from .session import Session

_END = object()


def result_of(rec: FrameRecord) -> Result:
    """A pipeline record as the API's `Result` (the frame kept, for `overlay()`)."""
    return Result.of(
        rec.slot,
        rec.mask,
        rec.shares,
        rec.detections,
        dict(rec.ms),
        rec.image,
        rec.index,
        rec.source_time,
        rec.file,
        rec.model,
        rec.overlay,
        rec.inferred,
    )


class _Handoff(Sink):
    """The last sink: gives each finished frame to the consumer, waiting while the consumer is behind; with a
    `label` (many sources into one queue) as (label, Result)."""

    def __init__(self, out: queue.Queue, closed: threading.Event, label: str | None = None):
        self.out, self.io, self.label = out, AbortAware(closed), label  # a closed stream stops waiting

    def frame_done(self, rec: FrameRecord) -> None:
        res = result_of(rec)
        self.io.put(self.out, res if self.label is None else (self.label, res))


class _Run:
    """The pipeline's side of a stream, kept apart from `ResultStream` so that an abandoned stream (a loop
    left with `break` and the stream dropped) can be collected, and its finaliser stop the pipeline."""

    def __init__(self, session: Session, buffer: int):
        self.session = session
        self.queue: queue.Queue = queue.Queue(buffer)
        self.closed = threading.Event()
        self.stats: RunStats | None = None
        self.error: BaseException | None = None
        session.pipeline.sinks.append(_Handoff(self.queue, self.closed))
        self.thread = threading.Thread(target=self.run, name="rtseg-stream", daemon=True)

    def run(self) -> None:
        try:
            self.stats = self.session.run(handle_signals=False)
        except BaseException as e:  # re-raised in the consumer's thread
            self.error = e
        finally:
            AbortAware(self.closed).put(self.queue, _END)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.session.pipeline.abort()
        self.closed.set()
        self.thread.join()
        while True:  # a consumer waiting in another thread must wake up and see the end
            try:
                self.queue.put_nowait(_END)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    pass


class ResultStream:
    """Iterate to get each frame's `Result`; `stats` holds the run's statistics once it has ended.

    >>> with rtseg.stream("video.mp4") as results:     # doctest: +SKIP
    ...     for res in results:
    ...         print(res.index, res.class_share["Road"])
    >>> results.stats.fps                               # doctest: +SKIP
    """

    def __init__(self, session: Session, buffer: int | None = None):
        self._done = True  # until the run has started: nothing for __del__ to stop
        # live: one result waits at most, so a slow consumer skips frames instead of seeing old ones
        self._run = _Run(session, buffer or (1 if session.source.live else 4))
        self._run.thread.start()
        self._done = False

    @property
    def stats(self) -> RunStats | None:
        return self._run.stats

    @property
    def live(self) -> bool:
        """Whether the source is live (a camera, a URL, `realtime=True`): it never ends by itself."""
        return self._run.session.source.live

    @property
    def model(self) -> str:
        """The model running now (the selector may switch it)."""
        return self._run.session.pipeline.slot.name

    def __iter__(self) -> "ResultStream":
        return self

    @property
    def running(self) -> bool:
        return self._run.thread.is_alive()

    def __next__(self) -> Result:
        if self._done:
            raise StopIteration
        item = self._run.queue.get()
        if item is _END or self._run.closed.is_set():
            self._done = True
            self._run.thread.join()
            if self._run.error is not None:
                raise self._run.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the pipeline (frames in flight are discarded) and wait until everything it opened is closed;
        safe from another thread (a consumer waiting for the next result then gets the end)."""
        self._run.stop()
        self._done = True

    def __enter__(self) -> "ResultStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._done:
            self.close()
