"""The live view's door: a server open beyond loopback asks for a token, a page of another site cannot read a
loopback server through DNS rebinding, the server names no Python version, IPv6 addresses bind, and values
from outside (model names, labels, the switch log, error text) reach the pages as text, never as HTML."""

import http.client
import logging
import re
import shutil
import socket
import subprocess
import time

import cv2
import numpy as np
import pytest

from helpers import run_cli

from rtseg.core.errors import RtsegError
from rtseg.runtime.http_access import ENV_TOKEN, ServeAccess
from rtseg.runtime.http_view import FeedHub, LiveServer

HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'  # runs script if it ever lands in innerHTML
JPEG = cv2.imencode(".jpg", np.full((24, 32, 3), 120, np.uint8))[1].tobytes()


class HostileFeed:
    """A feed whose every word comes from outside and is HTML: the model's name, the switch log, an error."""

    closing = False

    def __init__(self, error: str | None = None):
        self.error = error

    def stats(self) -> dict:
        return {
            "fps": 12.5,
            "frames_in": 40,
            "frames_out": 40,
            "dropped": 0,
            "model": HOSTILE,
            "backend": HOSTILE,
            "stage_ms": {"infer": 3.0},
            "state": "failed" if self.error else "running",
            "error": self.error,
            "switches": [{"t": 1.5, "frame": 9, "from": HOSTILE, "to": "<b>bold</b>"}],
        }

    def single_jpeg(self) -> bytes:
        return JPEG

    def newest_jpeg(self, after: int, timeout: float = 1.0) -> tuple[bytes | None, int]:
        time.sleep(0.1)  # a camera's pace: ten pictures a second
        return JPEG, after + 1

    def watching(self, delta: int) -> None:
        pass


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_TOKEN, raising=False)


@pytest.fixture
def serve():
    """LiveServer(address, access=...) over one hostile feed; every server it made is closed after the test."""
    made = []

    def start(address: str = "127.0.0.1:0", hub=None, **access) -> LiveServer:
        server = LiveServer(address, hub or FeedHub({"": HostileFeed()}), access=ServeAccess(**access))
        made.append(server)
        return server

    yield start
    for server in made:
        server.close()


def get(
    server: LiveServer, path: str = "/stats.json", host: str | None = "default", **headers: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One GET to the server on loopback; Host is 127.0.0.1:PORT unless given (None: the header left out)."""
    conn = http.client.HTTPConnection("::1" if ":" in server.host else "127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", f"127.0.0.1:{server.port}" if host == "default" else host)
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def raw_get(port: int, request: bytes) -> bytes:
    """A request written by hand (HTTP/1.0 without Host, two Host headers): the server's whole reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


@pytest.fixture
def said():
    """What rtseg logs during the test (a handler on its own logger: the command's setup stops propagation)."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("rtseg")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def printed_token(said: list[str]) -> str:
    lines = [line for line in said if "?token=" in line]
    assert len(lines) == 1, lines  # said once
    return re.search(r"\?token=([A-Za-z0-9_-]+)", lines[0]).group(1)


# -- the token ------------------------------------------------------------------------------------------
def test_an_open_bind_without_a_token_makes_one_prints_it_and_asks_for_it(serve, said):
    server = serve("0.0.0.0:0")
    token = printed_token(said)
    assert len(token) >= 20 and f":{server.port}/?token={token}" in server.login_url

    for path in ("/", "/stats.json", "/frame.jpg", "/stream.mjpg"):
        code, headers, body = get(server, path)
        assert code == 401 and b"fps" not in body and b"pwned" not in body, path
        assert headers["Content-Type"].startswith("text/plain")
    assert get(server, "/stats.json?token=" + token + "x")[0] == 401  # a wrong token

    code, headers, body = get(server, "/?token=" + token)
    cookie = headers["Set-Cookie"]
    assert code == 200 and b"<html" in body
    assert f"={token}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie

    jar = cookie.split(";", 1)[0]  # what a browser sends back: the page's own requests carry only the cookie
    code, _, body = get(server, "/stats.json", Cookie=f"other=1; {jar}")
    assert code == 200 and b'"fps": 12.5' in body
    assert get(server, "/frame.jpg", Cookie=jar)[2] == JPEG
    assert get(server, "/stats.json", Authorization=f"Bearer {token}")[0] == 200  # a program's way
    assert get(server, "/stats.json", Cookie=jar + "x")[0] == 401
    # the printed URL's host passes the Host check (a wildcard bind is shown under this machine's name)
    assert get(server, "/stats.json?token=" + token, host=f"{socket.gethostname()}:{server.port}")[0] == 200


def test_a_loopback_server_asks_for_no_token_unless_given_one(serve, monkeypatch, said):
    code, headers, _ = get(serve("127.0.0.1:0"))
    assert code == 200 and "Set-Cookie" not in headers and not any("token" in line for line in said)

    given = serve("127.0.0.1:0", token="s3cret-Token")
    assert get(given)[0] == 401 and get(given, "/stats.json?token=s3cret-Token")[0] == 200
    monkeypatch.setenv(ENV_TOKEN, "from-env")
    from_env = serve("0.0.0.0:0")
    assert get(from_env)[0] == 401 and get(from_env, "/stats.json", Authorization="Bearer from-env")[0] == 200
    assert not any("?token=" in line for line in said)  # a token the user gave is not printed


def test_a_token_that_cannot_travel_in_a_url_or_a_bad_host_name_is_a_one_line_error(serve):
    for bad in ("", "two words", "a;b"):
        with pytest.raises(RtsegError, match="--serve-token must be letters"):
            serve("127.0.0.1:0", token=bad)
    with pytest.raises(RtsegError, match="--serve-allow-host 'a b': not a host name"):
        ServeAccess(allow_hosts=("a b",))


def test_the_command_line_passes_the_token_on(tiny_model, clip, tmp_path):
    """`rtseg run --serve 0.0.0.0:0` prints its URL with the token even with --quiet; `rtseg serve` checks
    its --serve-token; a token without --serve is refused."""
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--quiet", "--serve", "0.0.0.0:0")
    assert res.returncode == 0, res.stderr
    assert len(re.findall(r"http://\S+:\d+/\?token=[A-Za-z0-9_-]{20,}", res.stderr)) == 1, res.stderr
    (tmp_path / "cams.txt").write_text(f"{clip}\n")
    res = run_cli(
        "serve", "--streams", tmp_path / "cams.txt", "--no-ray", "--listen", "127.0.0.1:0", "--serve-token", "two words", "--duration", "1"
    )
    assert res.returncode == 1 and "--serve-token must be letters" in res.stderr
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--serve-token", "abc")
    assert res.returncode == 1 and "go with --serve" in res.stderr


# -- the Host header ------------------------------------------------------------------------------------
def test_a_rebinding_host_is_refused_on_loopback(serve):
    server = serve("127.0.0.1:0")
    port = server.port
    for evil in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}", "", "127.0.0.1:99999"):
        code, _, body = get(server, "/stats.json", host=evil)
        assert code == 403 and b"fps" not in body, evil
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert get(server, "/stats.json", host=own)[0] == 200, own
    # HTTP/1.0 without a Host: only on loopback; two Host headers: never
    assert raw_get(port, b"GET /stats.json HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")
    two = f"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n\r\n".encode()
    assert raw_get(port, two).split(b"\r\n", 1)[0].endswith(b"403 Forbidden")


def test_an_open_server_answers_to_its_names_and_addresses_and_the_ones_given(serve):
    server = serve("0.0.0.0:0", token="tok", allow_hosts=("cams.example.org:443",))
    port, auth = server.port, {"Authorization": "Bearer tok"}
    for own in (f"192.168.7.9:{port}", f"{socket.gethostname()}:{port}", f"Cams.Example.org:{port}", f"[fe80::1]:{port}"):
        assert get(server, "/stats.json", host=own, **auth)[0] == 200, own
    assert get(server, "/stats.json", host=f"evil.example:{port}", **auth)[0] == 403
    assert b" 403 " in raw_get(port, b"GET /stats.json HTTP/1.0\r\nAuthorization: Bearer tok\r\n\r\n").split(b"\r\n")[0]


# -- headers, IPv6 --------------------------------------------------------------------------------------
def test_the_server_header_names_no_python_and_pages_carry_a_policy(serve):
    server = serve()
    for path in ("/", "/stats.json", "/nothing"):
        _, headers, _ = get(server, path)
        assert headers["Server"] == "rtseg" and "Python" not in str(headers)
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    policy = get(server, "/")[1]["Content-Security-Policy"]
    assert "script-src 'sha256-" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError as e:
        print(f"no IPv6 loopback here: {e}")
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_addresses_bind_an_ipv6_socket(serve, said):
    server = serve("[::1]:0")
    assert server.server.socket.family == socket.AF_INET6 and server.url == f"http://[::1]:{server.port}/"
    assert get(server, "/stats.json", host=f"[::1]:{server.port}")[0] == 200
    assert get(server, "/stats.json", host=f"evil.example:{server.port}")[0] == 403
    every = serve("[::]:0")  # every address, IPv4 ones too: and so behind a made-up token
    token = printed_token(said)
    assert every.url == f"http://[::]:{every.port}/"
    assert get(every, "/stats.json", host=f"[::1]:{every.port}")[0] == 401
    assert get(every, f"/stats.json?token={token}", host=f"[::1]:{every.port}")[0] == 200


# -- the pages: values from outside as text -------------------------------------------------------------
def test_the_pages_put_no_data_in_as_html(serve):
    grid = FeedHub({"a": HostileFeed(), "b": HostileFeed()})
    pages = [get(serve(), "/")[2].decode(), get(serve(hub=grid), "/")[2].decode()]
    for page in pages:
        script = page.split("<script>", 1)[1]
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in script
        assert "textContent" in script
    assert "encodeURIComponent(label)" in pages[1]


def test_a_label_is_escaped_in_the_page_it_names(serve):
    label = '"><script>alert(1)</script>'
    server = serve(hub=FeedHub({label: HostileFeed(), "b": HostileFeed()}))
    from urllib.parse import quote

    code, _, body = get(server, "/" + quote(label, safe="") + "/")
    assert code == 200 and b"<script>alert" not in body and b'data-base="/%22%3E%3Cscript%3E' in body


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_dom(url: str) -> str:
    """The page's DOM after its script ran a while, as headless Chromium builds it (--dump-dom)."""
    res = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.mark.skipif(not CHROMIUM, reason="needs Chromium (apt-get install chromium)")
def test_a_browser_shows_hostile_names_as_text_and_the_cookie_carries_the_page(serve, said):
    """Headless Chromium opens the printed URL with its token: the page's own requests get in on the cookie
    (the numbers fill in), and a model name, a switch log and an error that are HTML show as text."""
    server = serve("0.0.0.0:0")
    dom = browser_dom(f"http://127.0.0.1:{server.port}/?token={printed_token(said)}")
    assert "pwned" not in dom.split("</title>")[0] and '<div id="model">run ended' not in dom
    assert "&lt;img src=x onerror=" in dom and "&lt;b&gt;bold&lt;/b&gt;" in dom  # shown, as text
    assert '<img src="x"' not in dom and "<b>bold</b>" not in dom  # never made into elements
    assert re.search(r'<span id="fps">12\.5</span>', dom) and "<td>frames out</td>" in dom

    label = 'cam"><img src=x onerror=alert(1)>'
    grid = serve(hub=FeedHub({label: HostileFeed(error=HOSTILE), "b": HostileFeed()}))
    dom = browser_dom(grid.url)
    assert "pwned" not in dom.split("</title>")[0] and '<img src="x"' not in dom
    assert 'href="/cam%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/"' in dom  # the label, encoded in its link
    assert "&lt;img src=x onerror=alert(1)&gt;</a>" in dom and "(failed: &lt;img" in dom
    assert re.search(r'<b id="total">25\.0</b>', dom)
