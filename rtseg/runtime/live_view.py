"""`--serve HOST:PORT`: the live overlay and the run's numbers over HTTP, for a browser or another program.

A `LiveFeed` is one source's live view, a sink: the pipeline only hands it the newest overlay (a reference,
under a lock); one encoder thread turns that into JPEG at most `max_fps` times a second, and only while
someone watches; every viewer has its own thread that sends the newest JPEG once it has sent the last one.
A slow or stalled viewer therefore skips frames and never slows the pipeline or the other viewers.

`LiveView` is one source's feed with an HTTP server of its own (`rtseg run SRC --serve 8080`); several
sources share one server, a feed each under /<label>/ (`http_view.LiveServer`). Binds to loopback unless told
otherwise; open beyond it, the server asks for a token (`http_access`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .frame import STAGES, FrameRecord
from .sinks import Sink
from .stats import RateMeter

if TYPE_CHECKING:
    from .http_access import ServeAccess
    from .pipeline import Pipeline


class LiveFeed(Sink):
    """One source's newest overlay as JPEG for its viewers, and its numbers (`stats`)."""

    def __init__(self, max_fps: float = 30.0, quality: int = 80, meta: dict | None = None):
        self.max_fps, self.quality = max_fps, quality
        self.meta = dict(meta or {})  # shown with the numbers: the source's URI, whether it still runs
        self.pipeline: Pipeline | None = None
        self._frame_cond = threading.Condition()  # the newest overlay, from the pipeline
        self._overlay: np.ndarray | None = None
        self._overlay_seq = 0
        self._jpeg_cond = threading.Condition()  # the newest JPEG, for the viewers
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._single: tuple[int, bytes] | None = None  # /frame.jpg's last encode, by overlay number
        self._viewers = 0
        self.viewers_served = 0
        self._lease_until = 0.0  # a viewer in another process keeps the encoder going by asking (`lease`)
        self._fresh_viewer = False  # a viewer just came: encode the newest overlay now, not at the next frame
        self._closing = threading.Event()
        self.meter = RateMeter(1.0)
        self._recent: deque[dict] = deque(maxlen=30)  # the last frames' stage times, for a steady reading
        self._last: dict = {}
        self.switches: deque[dict] = deque(maxlen=100)
        self._t0 = time.time()
        self._encoder = threading.Thread(target=self._encode_loop, name="serve-jpeg", daemon=True)
        self._encoder.start()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    # -- the pipeline's side: cheap, never waits on a viewer ------------------------------------------
    def attach(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def write(self, rec: FrameRecord) -> None:
        with self._frame_cond:
            self._overlay, self._overlay_seq = rec.overlay, self._overlay_seq + 1
            self._frame_cond.notify()

    def frame_done(self, rec: FrameRecord) -> None:
        self.meter.tick()
        self._recent.append(dict(rec.ms))
        self._last = {
            "frame": rec.index,
            "model": rec.model,
            "backend": rec.slot.backend.name if rec.slot else None,
            "inferred": rec.inferred,
        }
        if rec.event and "switch" in rec.event:
            self.switches.append({"frame": rec.index, "t": round(time.time() - self._t0, 2), **rec.event["switch"]})

    def close(self) -> None:
        self._closing.set()
        with self._frame_cond:
            self._frame_cond.notify_all()
        with self._jpeg_cond:
            self._jpeg_cond.notify_all()
        self._encoder.join(timeout=2)

    # -- the encoder ---------------------------------------------------------------------------------
    def _encode_loop(self) -> None:
        seen, next_at = 0, 0.0
        while not self._closing.is_set():
            with self._frame_cond:
                self._frame_cond.wait_for(lambda: self._overlay_seq != seen or self._fresh_viewer or self._closing.is_set(), timeout=0.5)
                if self._fresh_viewer:  # the newest overlay counts as new for the one who just came
                    self._fresh_viewer, seen = False, -1
                overlay, seq = self._overlay, self._overlay_seq
            if overlay is None or seq == seen:
                continue
            if self._viewers == 0 and time.monotonic() > self._lease_until:  # nobody watching: no encoding
                seen = seq
                continue
            wait = next_at - time.perf_counter()
            if wait > 0:  # at most max_fps encodes a second; the newest frame when the time comes
                time.sleep(wait)
                continue
            ok, buf = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            seen, next_at = seq, time.perf_counter() + 1.0 / self.max_fps
            if ok:
                with self._jpeg_cond:
                    self._jpeg, self._jpeg_seq = buf.tobytes(), self._jpeg_seq + 1
                    self._jpeg_cond.notify_all()

    # -- the viewers' side ---------------------------------------------------------------------------
    def newest_jpeg(self, after: int, timeout: float = 1.0) -> tuple[bytes | None, int]:
        """The newest JPEG once it is newer than `after` (or None after `timeout`), and its number. An `after`
        beyond the newest number (a viewer's, from before this feed restarted) counts as 0."""
        with self._jpeg_cond:
            after = after if after <= self._jpeg_seq else 0
            self._jpeg_cond.wait_for(lambda: self._jpeg_seq > after or self._closing.is_set(), timeout=timeout)
            return (self._jpeg, self._jpeg_seq) if self._jpeg_seq > after else (None, after)

    def watching(self, delta: int) -> None:
        """A viewer of the MJPEG stream came (+1) or left (-1)."""
        with self._jpeg_cond:
            self._viewers += delta
            self.viewers_served += max(delta, 0)
        if delta > 0:
            with self._frame_cond:
                self._fresh_viewer = True  # encode the newest frame now: a paused source may send none for long
                self._frame_cond.notify()

    def lease(self, seconds: float) -> None:
        """Encode for viewers for the next `seconds` as if one watched: a viewer behind a proxy in another
        process (`rtseg serve` on Ray) renews this with each request, and a lease outlives no dead proxy."""
        first = time.monotonic() > self._lease_until
        self._lease_until = max(self._lease_until, time.monotonic() + seconds)
        if first:
            with self._frame_cond:
                self._fresh_viewer = True
                self._frame_cond.notify()

    def single_jpeg(self) -> bytes | None:
        """The newest overlay as one JPEG (None before the first frame); a grid of many sources polls this,
        so one frame is encoded once however many ask for it."""
        with self._frame_cond:
            overlay, seq = self._overlay, self._overlay_seq
        if overlay is None:
            return None
        cached = self._single
        if cached is not None and cached[0] == seq:
            return cached[1]
        ok, buf = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return None
        self._single = (seq, buf.tobytes())
        return self._single[1]

    # -- the numbers ---------------------------------------------------------------------------------
    def stats(self) -> dict:
        """FPS over the last second, mean stage times over the last 30 frames, counts, model, switches."""
        recent = list(self._recent)
        ms = {s: round(float(np.mean([r.get(s, 0.0) for r in recent])), 3) if recent else None for s in STAGES}
        p = self.pipeline
        counts = p.counts() if p is not None else {}
        return {
            "fps": round(self.meter.fps, 2),
            "stage_ms": ms,
            **counts,
            **self._last,
            "switches": list(self.switches),
            "viewers": self._viewers,
            "uptime_s": round(time.time() - self._t0, 1),
            **self.meta,
        }


class LiveView(LiveFeed):
    """One source's live feed with an HTTP server of its own: `rtseg run SRC --serve [HOST:]PORT`.

    Endpoints: / (a page that updates by itself), /stream.mjpg, /frame.jpg, /stats.json.
    """

    def __init__(self, address: str, max_fps: float = 30.0, quality: int = 80, access: ServeAccess | None = None):
        from .http_view import FeedHub, LiveServer

        super().__init__(max_fps, quality)
        try:
            self.server = LiveServer(address, FeedHub({"": self}), access=access)
        except BaseException:
            super().close()
            raise

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def close(self) -> None:
        super().close()
        self.server.close()

    def describe(self) -> str:
        return f"live view: served {self.url} to {self.viewers_served} viewer(s)"
