"""Tiny models and synthetic clips for the tests: fast, deterministic, no ../shared needed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MEAN_R, STD_R = 0.485, 0.229
NUM_CLASSES = 11


def grey_for_class(k: int) -> int:
    """The grey level whose frames the nearest-centre model labels as class k."""
    return 20 + 20 * k


def nearest_centre_onnx(path: Path, size: tuple[int, int] = (64, 80), dynamic: bool = False) -> Path:
    """An ONNX model that labels each pixel with the class whose grey level is nearest (red channel).

    argmax_k -(x - c_k)^2 = argmax_k (2 c_k x - c_k^2): a 1x1 convolution with weights 2 c_k and bias
    -c_k^2 is an exact nearest-centre classifier, so the expected mask of any frame is known.
    """
    import onnx
    from onnx import TensorProto, helper

    centres = np.array([(grey_for_class(k) / 255.0 - MEAN_R) / STD_R for k in range(NUM_CLASSES)], np.float32)
    w = np.zeros((NUM_CLASSES, 3, 1, 1), np.float32)
    w[:, 0, 0, 0] = 2 * centres
    b = -(centres**2)
    h, wd = ("height", "width") if dynamic else size
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "W", "B"], ["logits"]),
            helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
            helper.make_node("Cast", ["idx"], ["mask"], to=TensorProto.UINT8),
        ],
        "nearest_centre",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, wd])],
        [helper.make_tensor_value_info("mask", TensorProto.UINT8, [1, h, wd])],
        [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel()), helper.make_tensor("B", TensorProto.FLOAT, b.shape, b)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def class_frame(k: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A uniform BGR frame the nearest-centre model labels entirely as class k."""
    return np.full((*size, 3), grey_for_class(k), np.uint8)


def write_clip(path: Path, n: int, size: tuple[int, int] = (48, 64), fps: float = 25.0, fourcc: str = "MJPG") -> Path:
    """A clip whose frame i is labelled class i % 11: order and counts can be checked per frame. MJPG decodes to
    full-range YUV (kept in BGR by the pipeline), mp4v to plain YUV 4:2:0 (which may stay I420: runtime/yuv.py)."""
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for i in range(n):
        writer.write(class_frame(i % NUM_CLASSES, size))
    writer.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def run_cli(*args: str, timeout: float = 120, **kw):
    """`rtseg ...` in a subprocess, as a user runs it (exit code and stderr are what we check)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "rtseg", *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def make_tiny_zoo(engines: Path) -> Path:
    """Two tiny untrained models exported with manifest entries (val mIoU 40 and 45, as if measured)."""
    import torch

    from rtseg.core.manifest import Manifest
    from rtseg.training.export import ExportRequest, export_checkpoint
    from rtseg.models import ModelSpec, build_model

    for width, head, os_, miou in ((0.35, "lraspp", 32, 0.40), (0.5, "deeplabv3plus", 16, 0.45)):
        spec = ModelSpec(width=width, head=head, output_stride=os_, input_size=(64, 96))
        torch.manual_seed(0)
        engines.mkdir(parents=True, exist_ok=True)
        ck = engines / f"{spec.name}.ckpt"
        torch.save({"model": build_model(spec).state_dict(), "spec": spec.to_dict()}, ck)
        export_checkpoint(ExportRequest(ck, engines, manifest_path=engines / "manifest.json"))
        ck.unlink()
        m = Manifest.load(engines / "manifest.json")
        m.models[-1]["metrics"] = {"camvid_val": {"miou": miou}}
        m.save()
    return engines


class MjpegServer:
    """A loopback MJPEG camera (multipart/x-mixed-replace over HTTP) that can die, stall and come back on
    the same port: `start()`, `stop()` (drops every viewer), `stall` (keeps the connection, sends nothing)."""

    def __init__(self, fps: float = 30.0, size: tuple[int, int] = (48, 64), port: int = 0, jpeg_for=None):
        self.fps, self.size, self.port = fps, size, port
        # frame i's JPEG bytes (the soak benchmark loops a real video); default: class frames, cycled
        self.jpeg_for = jpeg_for or (lambda i: cv2.imencode(".jpg", class_frame(i % NUM_CLASSES, self.size))[1].tobytes())
        self.sent = 0
        self.stall = False
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam.mjpg"

    def start(self) -> "MjpegServer":
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        cam = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                next_t = time.perf_counter()
                try:
                    while not stop.is_set():
                        if cam.stall:
                            time.sleep(0.05)
                            next_t = time.perf_counter()
                            continue
                        jpg = cam.jpeg_for(cam.sent)
                        self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")
                        cam.sent += 1
                        next_t += 1.0 / cam.fps  # a steady rate, whatever the write took
                        time.sleep(max(0.0, next_t - time.perf_counter()))
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        stop = threading.Event()
        self._stop = stop
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self._stop.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# -- waiting on a run: an observed event with a deadline, never "sleep N and hope" -----------------------
def wait_for(cond, what: str, timeout: float = 60.0, run: "CliRun | None" = None, poll_s: float = 0.01):
    """Poll `cond()` until it returns something true, and return that. Fails with `what` after `timeout` s,
    and at once (with the run's stderr) if `run` has ended first, so a run that died at start-up never hangs
    the suite. Polling with a deadline is the synchronisation; the short pause only spares the CPU."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if run is not None and not run.alive():
            run.drain()
            got = cond()  # what the run did just before it ended
            if got:
                return got
            raise AssertionError(f"the run ended (exit {run.proc.returncode}) before {what}:\n{run.stderr[-4000:]}")
        if time.monotonic() > deadline:
            tail = f"\n{run.stderr[-4000:]}" if run is not None else ""
            raise AssertionError(f"no {what} within {timeout:g} s{tail}")
        time.sleep(poll_s)


def complete_lines(path: Path) -> list[str]:
    """The frame lines of a JSON-lines file another process is still writing that are complete (it is written
    in blocks: the last line may be cut short), its header line left out; none while the file does not exist."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.split("\n")[:-1] if not line.startswith('{"header"')]


# Runs `rtseg` as `python -m rtseg` does, with two test doubles that environment variables switch on:
# RTSEG_TEST_INFER_DELAY_S makes every inference take that much longer (a slow model on a slow machine, as
# SlowBackend does in process: a run that is certainly still going, or frames certainly in flight), and
# RTSEG_TEST_SAY=1 prints "rtseg-test: inferred" after each inference and "rtseg-test: stopping" when a
# run is told to stop (RunControl.stop: a signal's handler acted): events a test can wait for.
INSTRUMENTED_RTSEG = """
import os, sys, time
from rtseg.runtime import run_control, slot
delay = float(os.environ.get("RTSEG_TEST_INFER_DELAY_S") or 0)
say = os.environ.get("RTSEG_TEST_SAY") == "1"
infer = slot.ModelSlot.infer
def slow_infer(self, x):
    time.sleep(delay)
    try:
        return infer(self, x)
    finally:
        if say:
            print("rtseg-test: inferred", file=sys.stderr, flush=True)
if delay or say:
    slot.ModelSlot.infer = slow_infer
stop = run_control.RunControl.stop
def said_stop(self):
    stop(self)
    print("rtseg-test: stopping", file=sys.stderr, flush=True)
if say:
    run_control.RunControl.stop = said_stop
from rtseg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def default_sigint() -> None:
    """In the child before it starts: Ctrl-C acts as in a terminal. A test suite started in the background by a
    non-interactive shell (CI) inherits SIGINT ignored, and Python keeps ignoring it in every child: the
    Ctrl-C tests would then test nothing, or hang."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CliRun:
    """`rtseg ARGS` started in the background as a user starts it; stdout and stderr are read line by line as
    they come (with the time each line came), so a test can wait for a line, a file or a count with a deadline
    and fail at once, with the run's stderr, if the run has ended. `infer_delay_s` / `say` switch on the test
    doubles of INSTRUMENTED_RTSEG. Use as a context manager: a run still going at the end is killed."""

    def __init__(self, *args, env: dict | None = None, cwd=None, infer_delay_s: float = 0.0, say: bool = False):
        import os
        import subprocess
        import sys
        import threading

        env = dict(os.environ if env is None else env)
        if infer_delay_s or say:
            env.update(RTSEG_TEST_INFER_DELAY_S=str(infer_delay_s), RTSEG_TEST_SAY="1" if say else "0")
            cmd = [sys.executable, "-c", INSTRUMENTED_RTSEG]
        else:
            cmd = [sys.executable, "-m", "rtseg"]
        self.proc = subprocess.Popen(
            [*cmd, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, preexec_fn=default_sigint
        )
        self.err_lines: list[tuple[float, str]] = []  # (time.monotonic() when it came, line without its newline)
        self.out_lines: list[tuple[float, str]] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stderr, self.err_lines), (self.proc.stdout, self.out_lines))
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream, into) -> None:
        import time

        for line in stream:
            into.append((time.monotonic(), line.rstrip("\n")))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def drain(self) -> None:
        """Once the run has ended: every line it wrote has been read."""
        for t in self._readers:
            t.join(10)

    @property
    def stderr(self) -> str:
        return "".join(line + "\n" for _, line in list(self.err_lines))

    @property
    def stdout(self) -> str:
        return "".join(line + "\n" for _, line in list(self.out_lines))

    def wait_for(self, cond, what: str, timeout: float = 60.0):
        return wait_for(cond, what, timeout, run=self)

    def wait_line(self, text: str, timeout: float = 60.0, count: int = 1) -> str:
        """The `count`-th stderr line holding `text`, once it has come."""

        def seen():
            lines = [line for _, line in list(self.err_lines) if text in line]
            return lines[count - 1] if len(lines) >= count else None

        return self.wait_for(seen, f"stderr line {count} with {text!r}", timeout)

    def line_time(self, text: str) -> float | None:
        """When the first stderr line holding `text` came (time.monotonic()), None if none has."""
        return next((t for t, line in list(self.err_lines) if text in line), None)

    def send(self, signum) -> None:
        assert self.alive(), f"the run ended (exit {self.proc.returncode}) before the signal:\n{self.stderr[-4000:]}"
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the run to end (failing, and killing it, after `timeout` s); its exit status."""
        import subprocess

        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the run did not end within {timeout:g} s:\n{self.stderr[-4000:]}") from None
        for t in self._readers:
            t.join(10)
        return self.proc.returncode

    def __enter__(self) -> "CliRun":
        return self

    def __exit__(self, *exc) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        for t in self._readers:
            t.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


class CameraDown:
    """A camera's port while the camera is down, seen from the network: every connection is answered
    `503 Service Unavailable`. It counts the reconnect attempts it was sent (`tried`) and those the client
    has given up on and closed (`given_up`: the client has gone back to waiting), so a test knows where a
    reconnecting run stands without guessing the back-off's timing."""

    def __init__(self, port: int):
        self.port, self.tried, self.given_up = port, 0, 0
        self._sock = None

    def start(self) -> "CameraDown":
        import socket
        import threading

        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(8)
        threading.Thread(target=self._accept, args=(self._sock,), daemon=True).start()
        return self

    def _accept(self, sock) -> None:
        import threading

        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed by stop()
                return
            self.tried += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:
        with conn:
            conn.settimeout(30)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                while conn.recv(4096):  # until the client closes its side: it has given this attempt up
                    pass
                self.given_up += 1
            except OSError:
                self.given_up += 1  # reset by the client: given up all the same

    def stop(self) -> None:
        import socket

        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None


def frame_lines(path: Path) -> list[dict]:
    """The frame records of a JSON-lines file, its header line (`{"header": {...}}`) left out."""
    import json

    lines = [json.loads(x) for x in Path(path).read_text().splitlines()]
    assert not lines or "header" in lines[0], f"{path}: no header line first"
    return [d for d in lines if "header" not in d]
