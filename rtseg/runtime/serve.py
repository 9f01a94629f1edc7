"""`--serve HOST:PORT`: the live overlay and the run's numbers over HTTP, for a browser or another program.

    /             a page with the live overlay, the numbers and the selector's switch log, updating by itself
    /stream.mjpg  the overlay as MJPEG (multipart/x-mixed-replace): <img src=...>, VLC, ffplay, OpenCV
    /frame.jpg    the newest overlay as one JPEG
    /stats.json   FPS, per-stage ms, latency, frames in/out/dropped, current model, switches

The pipeline only hands the newest overlay over (a reference, under a lock); one encoder thread turns it
into JPEG at most `max_fps` times a second, and only while someone is watching; every viewer has its own
thread that sends the newest JPEG when it has sent the last one. A slow or stalled viewer therefore skips
frames and never slows the pipeline or the other viewers. Binds to loopback unless told otherwise.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..core.errors import RtsegError
from .frame import STAGES, FrameRecord
from .sinks import Sink
from .stats import RateMeter

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)
BOUNDARY = "rtsegframe"


def parse_address(text: str) -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port); a bare port binds loopback."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise RtsegError(f"--serve wants HOST:PORT or PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise RtsegError(f"--serve: port {number} is out of range")
    return (host.strip("[]") or "127.0.0.1"), number


class LiveView(Sink):
    """A sink that serves the overlay and the statistics; see the module docstring for the endpoints."""

    def __init__(self, address: str, max_fps: float = 30.0, quality: int = 80):
        self.host, port = parse_address(address)
        self.max_fps, self.quality = max_fps, quality
        self.pipeline: Pipeline | None = None
        self._frame_cond = threading.Condition()  # the newest overlay, from the pipeline
        self._overlay: np.ndarray | None = None
        self._overlay_seq = 0
        self._jpeg_cond = threading.Condition()   # the newest JPEG, for the viewers
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._viewers = 0
        self.viewers_served = 0
        self._closing = threading.Event()
        self.meter = RateMeter(1.0)
        self._recent: deque[dict] = deque(maxlen=30)  # the last frames' stage times, for a steady reading
        self._last: dict = {}
        self.switches: deque[dict] = deque(maxlen=100)
        self._t0 = time.time()
        try:
            self.server = ThreadingHTTPServer((self.host, port), _handler_for(self))
        except OSError as e:
            raise RtsegError(f"--serve {address}: cannot listen there ({e.strerror or e})") from e
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._threads = [threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                          name="serve-http", daemon=True),
                         threading.Thread(target=self._encode_loop, name="serve-jpeg", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

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
        self._last = {"frame": rec.index, "model": rec.model, "backend": rec.slot.backend.name if rec.slot else None}
        if rec.event and "switch" in rec.event:
            self.switches.append({"frame": rec.index, "t": round(time.time() - self._t0, 2), **rec.event["switch"]})

    def close(self) -> None:
        self._closing.set()
        with self._frame_cond:
            self._frame_cond.notify_all()
        with self._jpeg_cond:
            self._jpeg_cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads:
            t.join(timeout=2)

    def describe(self) -> str:
        return f"live view: served {self.url} to {self.viewers_served} viewer(s)"

    # -- the encoder ---------------------------------------------------------------------------------
    def _encode_loop(self) -> None:
        seen, next_at = 0, 0.0
        while not self._closing.is_set():
            with self._frame_cond:
                self._frame_cond.wait_for(lambda: self._overlay_seq != seen or self._closing.is_set(), timeout=0.5)
                overlay, seq = self._overlay, self._overlay_seq
            if overlay is None or seq == seen:
                continue
            if self._viewers == 0:  # nobody watching: no encoding (the next viewer waits one frame)
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

    def newest_jpeg(self, after: int, timeout: float = 1.0) -> tuple[bytes | None, int]:
        """The newest JPEG once it is newer than `after` (or None after `timeout`), and its number."""
        with self._jpeg_cond:
            self._jpeg_cond.wait_for(lambda: self._jpeg_seq > after or self._closing.is_set(), timeout=timeout)
            return (self._jpeg, self._jpeg_seq) if self._jpeg_seq > after else (None, after)

    def watching(self, delta: int) -> None:
        with self._jpeg_cond:
            self._viewers += delta
            self.viewers_served += max(delta, 0)
        with self._frame_cond:
            self._frame_cond.notify()  # a first viewer: encode the newest frame now

    def single_jpeg(self) -> bytes | None:
        with self._frame_cond:
            overlay = self._overlay
        if overlay is None:
            return None
        ok, buf = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return buf.tobytes() if ok else None

    # -- the numbers ---------------------------------------------------------------------------------
    def stats(self) -> dict:
        recent = list(self._recent)
        ms = {s: round(float(np.mean([r.get(s, 0.0) for r in recent])), 3) if recent else None for s in STAGES}
        p = self.pipeline
        counts = p.counts() if p is not None else {}
        return {"fps": round(self.meter.fps, 2), "stage_ms": ms, **counts, **self._last, "switches": list(self.switches),
                "viewers": self._viewers, "uptime_s": round(time.time() - self._t0, 1)}


def _handler_for(view: LiveView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a viewer that stops reading for this long is dropped, its thread freed
        server_version = "rtseg"

        def log_message(self, fmt, *args) -> None:  # the terminal belongs to the run's own messages
            log.debug("serve: " + fmt, *args)

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(200, PAGE.encode(), "text/html; charset=utf-8")
                elif path == "/stats.json":
                    self._send(200, json.dumps(view.stats()).encode(), "application/json")
                elif path == "/frame.jpg":
                    jpeg = view.single_jpeg()
                    self._send(200, jpeg, "image/jpeg") if jpeg else self._send(503, b"no frame yet\n", "text/plain")
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self._send(404, b"not found\n", "text/plain")
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the viewer left

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            view.watching(+1)
            try:
                seq = 0
                while not view._closing.is_set():
                    jpeg, seq = view.newest_jpeg(seq)
                    if jpeg is None:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                     .encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            finally:
                view.watching(-1)

    return Handler


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rtseg live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px system-ui, sans-serif; margin: 0; background: #111; color: #eee; display: flex; flex-wrap: wrap; }
 #view { flex: 1 1 640px; padding: 12px; } #view img { width: 100%; max-width: 1280px; background: #000; }
 #side { flex: 0 0 300px; padding: 12px; } table { border-collapse: collapse; width: 100%; }
 td { padding: 2px 6px; border-bottom: 1px solid #333; } td.v { text-align: right; font-variant-numeric: tabular-nums; }
 #fps { font-size: 32px; font-weight: 600; } ol { padding-left: 18px; font-size: 12px; }
</style></head><body>
<div id="view"><img id="live" src="/stream.mjpg" alt="live overlay"></div>
<div id="side">
 <div><span id="fps">-</span> FPS</div>
 <div id="model">-</div>
 <table id="numbers"></table>
 <h4>Model switches</h4><ol id="switches"><li>none yet</li></ol>
</div>
<script>
const rows = [["frames in", "frames_in"], ["frames out", "frames_out"], ["dropped", "dropped"],
              ["latency p95 ms", "latency_ms_p95"], ["viewers", "viewers"], ["uptime s", "uptime_s"]];
function fmt(v) { return v === null || v === undefined ? "-" : (typeof v === "number" ? +v.toFixed(2) : v); }
async function tick() {
  try {
    const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
    document.getElementById("fps").textContent = s.fps.toFixed(1);
    document.getElementById("model").textContent = (s.model || "-") + (s.backend ? " [" + s.backend + "]" : "");
    const stages = Object.entries(s.stage_ms).map(([k, v]) => [k + " ms", v]);
    document.getElementById("numbers").innerHTML = rows.map(([n, k]) => [n, s[k]]).concat(stages)
      .map(([n, v]) => `<tr><td>${n}</td><td class="v">${fmt(v)}</td></tr>`).join("");
    if (s.switches.length) document.getElementById("switches").innerHTML = s.switches.slice().reverse()
      .map(e => `<li>${e.t}s frame ${e.frame}: ${e.from} &rarr; ${e.to}</li>`).join("");
  } catch (e) { document.getElementById("model").textContent = "run ended"; }
}
setInterval(tick, 500); tick();
</script></body></html>
"""
