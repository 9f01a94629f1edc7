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
    b = -(centres ** 2)
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

    return subprocess.run([sys.executable, "-m", "rtseg", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


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
                        self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                         + jpg + b"\r\n")
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
