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
(`FeedHub`) and feeds in Ray actors on other machines (`fleet.serve.RayHub`).

Every request passes the door first (`http_access.Gate`: the Host header, then the token when one is asked
for). The pages (`http_pages`) put every value from outside in as text, never as HTML.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping, Protocol
from urllib.parse import quote, unquote

from ..core.errors import RtsegError
from .http_access import Gate, ServeAccess, is_loopback, is_wildcard, parse_address, resolve_token
from .http_pages import GRID_PAGE, PAGE, POLICY

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

    def __init__(self, feeds: Mapping[str, Feed]):  # only read, so a dict[str, LiveFeed] is one too
        self.feeds = feeds
        self.single = list(feeds) == [""]

    def feed(self, label: str) -> Feed | None:
        return self.feeds.get(label)

    def stats(self) -> dict:
        if self.single:
            return self.feeds[""].stats()
        return combine({label: feed.stats() for label, feed in self.feeds.items()})


class _Server6(ThreadingHTTPServer):
    """The server on an IPv6 address (`[::1]:PORT`, `[::]:PORT`)."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        # `[::]` takes IPv4 viewers too, as `0.0.0.0` does, whatever the system's default (net.ipv6.bindv6only)
        with contextlib.suppress(AttributeError, OSError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class LiveServer:
    """An HTTP server over a hub's feeds, in threads of its own (one per viewer); `close` stops it.

    `access` is the door (`http_access`): a server open beyond loopback asks for a token, made up and
    printed once as a URL (`login_url`) when none is given."""

    def __init__(self, address: str, hub: Hub, flag: str = "--serve", access: ServeAccess | None = None):
        access = access or ServeAccess()
        self.host, port = parse_address(address, flag)
        self.hub = hub
        self._closing = threading.Event()
        token, made = resolve_token(access.token, is_loopback(self.host))  # a bad token is said before listening
        server_class = _Server6 if ":" in self.host else ThreadingHTTPServer
        try:
            self.server = server_class((self.host, port), _handler_for(self))
        except (OSError, UnicodeError) as e:
            raise RtsegError(f"{flag} {address}: cannot listen there ({getattr(e, 'strerror', None) or e})") from e
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.gate = Gate(self.host, self.port, token, access.allow_hosts)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="serve-http", daemon=True)
        self._thread.start()
        if made:  # a warning, so that --quiet still prints the one way in
            log.warning(f"rtseg: the live view is open beyond this machine and asks for a token, made for this run: {self.login_url}")
        elif not self.gate.loopback:
            log.info(f"rtseg: the live view on {self.url} is open beyond this machine and asks for the token given")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def login_url(self) -> str:
        """The URL to open, token included; on a wildcard bind, under this machine's name (0.0.0.0 is no
        address to browse to, and the name passes the Host check)."""
        url = self.url
        if is_wildcard(self.host):
            url = f"http://{socket.gethostname()}:{self.port}/"
        return url + (f"?token={self.gate.token}" if self.gate.token else "")

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
        label = unquote(label)  # the grid asks for /<encodeURIComponent(label)>/
        feed = self.hub.feed(label) if label else None
        return feed, rest, f"/{quote(label, safe='')}/"


def _handler_for(server: LiveServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a viewer that stops reading for this long is dropped, its thread freed
        server_version = "rtseg"
        sys_version = ""  # the Server header names no Python version for a scanner to match
        extra_headers: tuple[tuple[str, str], ...] = ()  # this reply's own (the token's cookie, a page's policy)

        def version_string(self) -> str:
            return self.server_version

        def log_message(self, fmt, *args) -> None:  # the terminal belongs to the run's own messages
            log.debug("serve: " + fmt, *args)

        def end_headers(self) -> None:
            # every reply, a page, a stream or a refusal: not sniffed as another type, no token sent on as Referer
            for name, value in (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), *self.extra_headers):
                self.send_header(name, value)
            super().end_headers()

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _page(self, page: str, base: str = "/") -> None:
            self.extra_headers += (("Content-Security-Policy", POLICY[page]),)
            self._send(200, page.replace("__BASE__", html.escape(base)).encode(), "text/html; charset=utf-8")

        def _admit(self, query: str) -> bool:
            hosts = self.headers.get_all("Host") or []
            host = hosts[0] if len(hosts) == 1 else ("" if hosts else None)  # two Host headers: refused
            verdict = server.gate.check(host, query, self.headers.get("Cookie"), self.headers.get("Authorization"))
            self.extra_headers = verdict.headers
            if not verdict.admitted:
                self._send(verdict.code, verdict.body, "text/plain; charset=utf-8")
            return verdict.admitted

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path, _, query = self.path.partition("?")
            try:
                if not self._admit(query):
                    return
                if not server.hub.single and path in ("/", "/index.html"):
                    self._page(GRID_PAGE)
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
                self._page(PAGE, base)
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
            feed.watching(+1)  # counted before the first byte goes out: a viewer that sees the stream is counted
            try:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seq = 0
                while not server.closing and not getattr(feed, "closing", False):
                    jpeg, seq = feed.newest_jpeg(seq)
                    if jpeg is None:
                        continue
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n"
                    )
                    self.wfile.flush()
            finally:
                feed.watching(-1)

    return Handler
