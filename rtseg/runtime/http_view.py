"""The HTTP side of the live view: one server for one source's feed, or for many sources' feeds.

One source (`rtseg run SRC --serve 8080`):
    /             a page with the live overlay, the numbers and the selector's switch log, updating by itself
    /stream.mjpg  the overlay as MJPEG (multipart/x-mixed-replace): <img src=...>, VLC, ffplay, OpenCV
    /frame.jpg    the newest overlay as one JPEG
    /stats.json   FPS, per-stage ms, latency, frames in/out/dropped, current model, switches

Many sources (`rtseg run SRC1 SRC2 --serve 8080`, `rtseg serve --streams FILE`): the same four under
/<label>/ for each source, and at the top
    /             a grid of every source, each tile refreshed from its /<label>/frame.jpg (a browser opens at
                  most six connections to one host: a grid of MJPEG streams would stall past five sources)
    /stats.json   {"sources": {label: that source's numbers}, and the totals: fps, frames in/out, dropped}

The server only asks a hub for feeds and numbers, so the same pages serve feeds in this process
(`FeedHub`) and feeds in Ray actors on other machines (`fleet.live.RayHub`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from ..core.errors import RtsegError
from .serve import parse_address

log = logging.getLogger(__name__)
BOUNDARY = "rtsegframe"
TOTALS = ("fps", "frames_in", "frames_out", "dropped")


class Feed(Protocol):
    """What the server needs of one source's live view (a `LiveFeed`, or a proxy to one in another process)."""

    def stats(self) -> dict: ...
    def single_jpeg(self) -> bytes | None: ...
    def newest_jpeg(self, after: int, timeout: float = 1.0) -> tuple[bytes | None, int]: ...
    def watching(self, delta: int) -> None: ...


class Hub(Protocol):
    """The feeds a server shows: one at the root (`single`), or one per label."""

    single: bool

    def feed(self, label: str) -> Feed | None: ...
    def stats(self) -> dict: ...


def combine(per_source: dict[str, dict]) -> dict:
    """Every source's numbers under "sources", with the totals over the sources that report them."""
    totals = {k: round(sum(s.get(k) or 0 for s in per_source.values()), 2) for k in TOTALS}
    return {"sources": per_source, **totals, "source_count": len(per_source)}


class FeedHub:
    """Feeds in this process: {"": feed} for one source at the root, else {label: feed}."""

    def __init__(self, feeds: dict[str, Feed]):
        self.feeds = feeds
        self.single = list(feeds) == [""]

    def feed(self, label: str) -> Feed | None:
        return self.feeds.get(label)

    def stats(self) -> dict:
        if self.single:
            return self.feeds[""].stats()
        return combine({label: feed.stats() for label, feed in self.feeds.items()})


class LiveServer:
    """An HTTP server over a hub's feeds, in threads of its own (one per viewer); `close` stops it."""

    def __init__(self, address: str, hub: Hub, flag: str = "--serve"):
        self.host, port = parse_address(address, flag)
        self.hub = hub
        self._closing = threading.Event()
        try:
            self.server = ThreadingHTTPServer((self.host, port), _handler_for(self))
        except OSError as e:
            raise RtsegError(f"{flag} {address}: cannot listen there ({e.strerror or e})") from e
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="serve-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2)

    def route(self, path: str) -> tuple[Feed | None, str, str]:
        """(the feed a path names, its endpoint, the page's base URL): /stats.json on one source is
        (feed, "stats.json", "/"); /cam0/frame.jpg on many is (cam0's feed, "frame.jpg", "/cam0/")."""
        if self.hub.single:
            return self.hub.feed(""), path.lstrip("/"), "/"
        label, _, rest = path.lstrip("/").partition("/")
        feed = self.hub.feed(label) if label else None
        return feed, rest, f"/{label}/"


def _handler_for(server: LiveServer) -> type[BaseHTTPRequestHandler]:
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
                if not server.hub.single and path in ("/", "/index.html"):
                    self._send(200, GRID_PAGE.encode(), "text/html; charset=utf-8")
                elif not server.hub.single and path == "/stats.json":
                    self._send(200, json.dumps(server.hub.stats()).encode(), "application/json")
                else:
                    self._one_source(path)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the viewer left
            except Exception as e:  # a page's error is the viewer's to see, not a traceback on the run's terminal
                log.debug(f"serve: {path}: {e!r}")
                with contextlib.suppress(OSError):
                    self._send(500, f"error: {e}\n".encode(), "text/plain")

        def _one_source(self, path: str) -> None:
            feed, endpoint, base = server.route(path)
            if feed is None:
                self._send(404, b"not found (the sources are listed at /stats.json)\n", "text/plain")
            elif endpoint in ("", "index.html"):
                self._send(200, PAGE.replace("__BASE__", base).encode(), "text/html; charset=utf-8")
            elif endpoint == "stats.json":
                self._send(200, json.dumps(feed.stats()).encode(), "application/json")
            elif endpoint == "frame.jpg":
                jpeg = feed.single_jpeg()
                self._send(200, jpeg, "image/jpeg") if jpeg else self._send(503, b"no frame yet\n", "text/plain")
            elif endpoint == "stream.mjpg":
                self._stream(feed)
            else:
                self._send(404, b"not found\n", "text/plain")

        def _stream(self, feed: Feed) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            feed.watching(+1)
            try:
                seq = 0
                while not server.closing and not getattr(feed, "closing", False):
                    jpeg, seq = feed.newest_jpeg(seq)
                    if jpeg is None:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                     .encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            finally:
                feed.watching(-1)

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
<div id="view"><img id="live" src="__BASE__stream.mjpg" alt="live overlay"></div>
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
    const s = await (await fetch("__BASE__stats.json", {cache: "no-store"})).json();
    document.getElementById("fps").textContent = (s.fps || 0).toFixed(1);
    document.getElementById("model").textContent = (s.model || "-") + (s.backend ? " [" + s.backend + "]" : "")
      + (s.state && s.state !== "running" ? " (" + s.state + ")" : "");
    const stages = Object.entries(s.stage_ms || {}).map(([k, v]) => [k + " ms", v]);
    document.getElementById("numbers").innerHTML = rows.map(([n, k]) => [n, s[k]]).concat(stages)
      .map(([n, v]) => `<tr><td>${n}</td><td class="v">${fmt(v)}</td></tr>`).join("");
    if ((s.switches || []).length) document.getElementById("switches").innerHTML = s.switches.slice().reverse()
      .map(e => `<li>${e.t}s frame ${e.frame}: ${e.from} &rarr; ${e.to}</li>`).join("");
  } catch (e) { document.getElementById("model").textContent = "run ended"; }
}
setInterval(tick, 500); tick();
</script></body></html>
"""

GRID_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rtseg live: all sources</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 13px system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
 header { padding: 8px 12px; font-size: 16px; } #grid { display: flex; flex-wrap: wrap; gap: 8px; padding: 0 8px; }
 .tile { flex: 0 1 400px; background: #1b1b1b; padding: 6px; } .tile img { width: 100%; background: #000; }
 .tile a { color: #9cf; } .bad { color: #f88; } .num { font-variant-numeric: tabular-nums; }
</style></head><body>
<header><b id="total">-</b> FPS in all, <span id="count">-</span> source(s)</header>
<div id="grid"></div>
<script>
const tiles = {};
function tile(label) {
  if (tiles[label]) return tiles[label];
  const d = document.createElement("div");
  d.className = "tile";
  d.innerHTML = `<img alt="${label}"><div><a href="/${label}/">${label}</a> <span class="num"></span></div>`;
  document.getElementById("grid").appendChild(d);
  return tiles[label] = d;
}
async function tick() {
  try {
    const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
    document.getElementById("total").textContent = s.fps.toFixed(1);
    document.getElementById("count").textContent = s.source_count;
    for (const [label, v] of Object.entries(s.sources)) {
      const d = tile(label), n = d.querySelector(".num");
      n.className = "num" + (v.state && v.state !== "running" ? " bad" : "");
      n.textContent = `${(v.fps || 0).toFixed(1)} FPS, ${v.frames_out || 0} frames, ${v.model || ""}` +
                      (v.state && v.state !== "running" ? ` (${v.state}${v.error ? ": " + v.error : ""})` : "");
      d.querySelector("img").src = `/${label}/frame.jpg?t=${Date.now()}`;
    }
  } catch (e) { document.getElementById("total").textContent = "run ended"; }
}
setInterval(tick, 500); tick();
</script></body></html>
"""
