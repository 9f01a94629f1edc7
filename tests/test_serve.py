"""`--serve`: the live view over HTTP. The page, the MJPEG stream and the numbers update while the run goes
on, and a viewer that stops reading never slows the pipeline."""

import json
import shutil
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest

from helpers import NUM_CLASSES, class_frame, wait_for

from rtseg.core.errors import RtsegError
from rtseg.runtime.http_view import BOUNDARY
from rtseg.runtime.http_access import parse_address
from rtseg.runtime.live_view import LiveView
from rtseg.runtime.sources import ArraySource

from test_pipeline import make_slot


class PacedFrames:
    """A camera-like iterable: `n` frames, one every `dt` seconds, cycling through the classes, until `until` is
    set. `noisy` frames encode to large JPEGs (some 10 kB: a stalled viewer's socket buffers fill in a few)."""

    def __init__(self, n: int, dt: float, noisy: bool = False, until: threading.Event | None = None):
        self.n, self.dt, self.noisy, self.until = n, dt, noisy, until

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.dt)
            if self.until is not None and self.until.is_set():
                return  # the camera is switched off: the source ends
            frame = class_frame(i % NUM_CLASSES, (120, 160))
            frame[:, i % 160] = 255  # a moving line: no two frames a second apart look alike
            if self.noisy:
                frame = frame // 2 + np.random.default_rng(i).integers(0, 128, frame.shape, dtype=np.uint8)
            yield frame


def run_with_view(tiny_model, frames, view):
    from rtseg.runtime.pipeline import Pipeline

    pipe = Pipeline(ArraySource(frames, live=True), make_slot(tiny_model), [view])
    t = threading.Thread(target=pipe.run, kwargs={"handle_signals": False}, daemon=True)
    t.start()
    return pipe, t


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def read_mjpeg_frames(url: str, n: int) -> list[np.ndarray]:
    import cv2

    frames, buf = [], b""
    with urllib.request.urlopen(url, timeout=5) as r:
        assert f"boundary={BOUNDARY}" in r.headers["Content-Type"]
        while len(frames) < n:
            buf += r.read1(65536)
            start, end = buf.find(b"\xff\xd8"), buf.find(b"\xff\xd9")
            if start >= 0 and end > start:
                frames.append(cv2.imdecode(np.frombuffer(buf[start : end + 2], np.uint8), cv2.IMREAD_COLOR))
                buf = buf[end + 2 :]
    return frames


def test_parse_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("host:port", "1:99999"):
        with pytest.raises(RtsegError):
            parse_address(bad)


def test_a_port_in_use_is_a_one_line_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(RtsegError, match="cannot listen"):
            LiveView(f"127.0.0.1:{s.getsockname()[1]}")


def test_stream_stats_and_page_update_while_running(tiny_model):
    view = LiveView("127.0.0.1:0", max_fps=50)
    # a minute of frames: the run is certainly still going while the test looks (it is stopped at the end)
    pipe, t = run_with_view(tiny_model, PacedFrames(3000, 0.02), view)
    try:
        page = urllib.request.urlopen(view.url, timeout=5).read().decode()
        assert 'src="/stream.mjpg"' in page and 'data-base="/"' in page  # the script asks for base + "stats.json"
        frames = read_mjpeg_frames(view.url + "stream.mjpg", 6)
        assert len({f.tobytes() for f in frames}) > 1  # the picture changes
        first = get_json(view.url + "stats.json")
        assert first["frames_out"] > 0
        second = wait_for(
            lambda: (lambda s: s if s["frames_out"] > first["frames_out"] else None)(get_json(view.url + "stats.json")),
            "a frame count in stats.json that grows",
            timeout=30,
        )
        assert t.is_alive() and second["fps"] > 0
        assert second["model"] == "tiny" and set(second["stage_ms"]) >= {"infer", "preprocess"}
        assert urllib.request.urlopen(view.url + "frame.jpg", timeout=5).headers["Content-Type"] == "image/jpeg"
    finally:
        pipe.stop()
        t.join(10)
    assert "1 viewer" in view.describe()


def test_a_stalled_viewer_does_not_slow_the_pipeline(tiny_model):
    view = LiveView("127.0.0.1:0", max_fps=100)
    switched_off = threading.Event()
    pipe, t = run_with_view(tiny_model, PacedFrames(100000, 0.01, noisy=True, until=switched_off), view)
    stalled = socket.create_connection(("127.0.0.1", view.port))
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # ... and never read a byte
        stalled.settimeout(30)
        assert stalled.recv(1, socket.MSG_PEEK)  # the stream to it has begun: a few frames fill its buffers
        assert view.stats()["viewers"] == 1
        # with the viewer stalled, frames go on coming out (a blocked viewer would hold the pipeline for good)
        start = pipe.counts()["frames_out"]
        wait_for(lambda: pipe.counts()["frames_out"] >= start + 100, "100 more frames out beside the stalled viewer")
        assert view.stats()["viewers"] == 1 and t.is_alive()  # still connected, still stalled
    finally:
        switched_off.set()  # the camera's stream ends: the run ends by itself, the stalled viewer still there
        t.join(30)
        stalled.close()
    assert not t.is_alive()
    stats = pipe.stats
    # a live source never waits: every frame the camera sent was processed or dropped as stale
    assert not stats.interrupted and stats.frames_out + pipe.counts()["dropped"] == stats.frames_in >= 100


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)")
def test_a_real_browser_sees_the_picture_and_the_numbers_change(tiny_model, tmp_path):
    """Headless Chromium, driven through its DevTools protocol by Playwright, with the system browser."""
    sync_api = pytest.importorskip("playwright.sync_api")
    view = LiveView("127.0.0.1:0", max_fps=30)
    pipe, t = run_with_view(tiny_model, PacedFrames(400, 0.02), view)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            page = browser.new_page(viewport={"width": 1000, "height": 520})
            page.goto(view.url)
            page.wait_for_function("document.getElementById('fps').textContent !== '-'", timeout=10000)
            img = page.locator("#live")
            first, fps1 = img.screenshot(), page.text_content("#numbers")
            time.sleep(1.0)
            second, fps2 = img.screenshot(), page.text_content("#numbers")
            assert first != second and fps1 != fps2
            page.screenshot(path=str(tmp_path / "live_view.png"))
            browser.close()
    finally:
        pipe.stop()
        t.join(10)


def test_a_viewer_of_a_paused_source_gets_its_last_picture_at_once():
    """A camera that sent one frame and then nothing: the viewer who comes later still sees that frame."""
    from types import SimpleNamespace

    from rtseg.runtime.live_view import LiveFeed

    feed = LiveFeed(max_fps=30)
    try:
        feed.write(SimpleNamespace(overlay=np.full((48, 64, 3), 90, np.uint8)))
        time.sleep(0.3)  # nobody watched when it came: it was not encoded
        feed.watching(+1)
        jpeg, seq = feed.newest_jpeg(0, timeout=2.0)
        assert jpeg is not None and seq == 1
        feed.watching(-1)
        feed.lease(1.0)  # a viewer behind a proxy (rtseg serve on Ray) gets it the same way
        jpeg2, seq2 = feed.newest_jpeg(seq, timeout=2.0)
        assert jpeg2 is not None and seq2 == 2
    finally:
        feed.close()
