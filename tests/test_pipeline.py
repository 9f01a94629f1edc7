"""Behaviour users rely on: every file frame comes out, in order; live sources stay fresh."""

import platform
import threading
import time

import cv2
import numpy as np
import pytest

from helpers import NUM_CLASSES, class_frame, count_frames, frame_lines, run_cli

from rtseg.backends import load_backend
from rtseg.data.camvid import CLASSES, PALETTE_RGB
from rtseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rtseg.core.modelinfo import ModelInfo
from rtseg.runtime.pipeline import Pipeline
from rtseg.runtime.postprocess import Postprocessor
from rtseg.runtime.preprocess import Preprocessor
from rtseg.runtime.sinks import Sink
from rtseg.runtime.slot import ModelSlot


def make_slot(model, delay_s=0.0, fail_at=None, name="tiny"):
    backend = load_backend("onnxruntime", str(model), threads=1)
    if delay_s or fail_at is not None:
        backend = SlowBackend(backend, delay_s, fail_at)
    info = ModelInfo(name=name, path=model, input_size=(64, 80))
    return ModelSlot(
        info, backend, Preprocessor((64, 80), IMAGENET_MEAN, IMAGENET_STD, pool_size=5), Postprocessor(PALETTE_RGB.tolist(), CLASSES)
    )


def make_pipeline(source, model, sinks=(), delay_s=0.0, fail_at=None, inline=None):
    return Pipeline(source, make_slot(model, delay_s, fail_at), list(sinks), preprocess_in_capture=inline)


# a file's frames preprocessed in the capture thread (few cores) or in a thread of their own (many)
LAYOUTS = pytest.mark.parametrize("inline", [True, False], ids=["preprocess-in-capture", "preprocess-thread"])


def run_bounded(p: Pipeline, inline: bool, seconds: float = 60.0):
    """`p.run()` in the layout asked for, failing (not hanging the suite) if it does not end in `seconds`."""
    assert p.preprocess_in_capture is inline
    out: dict = {}
    seen: list[set] = []

    class Probe(Sink):  # which threads run while frames flow
        takes_i420 = True  # reads no pixels: a run's frames may stay I420 (tests/test_yuv.py)

        def write(self, rec) -> None:
            if not seen:
                seen.append({th.name for th in threading.enumerate()})

    p.sinks.append(Probe())

    def go():
        try:
            out["stats"] = p.run(handle_signals=False)
        except BaseException as e:  # re-raised in the test's thread
            out["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        p.abort()
        pytest.fail(f"the pipeline did not end within {seconds} s")
    if "error" in out:
        raise out["error"]
    if seen:
        assert ("preprocess" in seen[0]) is not inline and "capture" in seen[0]
    assert "preprocess" not in {th.name for th in threading.enumerate()}  # the run's threads have ended
    return out["stats"]


class SlowBackend:
    """A real backend made slower (a heavy model, a busy machine), or failing at a given call."""

    def __init__(self, inner, delay_s, fail_at=None):
        self.inner, self.delay_s, self.fail_at, self.calls = inner, delay_s, fail_at, 0
        self.name, self.input_name = inner.name, inner.input_name

    def infer(self, x):
        self.calls += 1
        if self.fail_at is not None and self.calls > self.fail_at:
            raise RuntimeError("backend failed")
        time.sleep(self.delay_s)
        return self.inner.infer(x)

    def close(self):
        pass


class FakeLiveSource:
    """A camera delivering `n` frames at `fps`, whatever the consumer does (like real hardware)."""

    live = True
    name = "fake camera"
    frame_count = None
    frame_size = (64, 48)

    def __init__(self, n, fps):
        self.n, self.period, self.i, self.t0 = n, 1.0 / fps, 0, None
        self.fps = fps
        self.skipped = []
        self.files = []

    def read(self):
        if self.i >= self.n:
            return None
        self.t0 = self.t0 or time.perf_counter()
        wait = self.t0 + self.i * self.period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        frame = class_frame(self.i % NUM_CLASSES)
        self.i += 1
        return frame, time.time(), str(self.i - 1)

    def close(self):
        pass


class FileLikeSource(FakeLiveSource):
    live = False
    name = "fake file"

    def __init__(self, n):
        super().__init__(n, fps=1e6)
        self.frame_count = n


class Collect(Sink):
    def __init__(self):
        self.records = []

    def write(self, rec):
        self.records.append((rec.index, int(np.argmax(rec.shares)), rec.mask.shape, rec.t_captured))

    def close(self):
        self.closed = True


def test_file_every_frame_in_order_through_the_cli(tiny_model, clip, tmp_path):
    out, masks, js = tmp_path / "out.mp4", tmp_path / "masks", tmp_path / "frames.jsonl"
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", out, "--save-masks", masks, "--json", js)
    assert res.returncode == 0, res.stderr
    lines = frame_lines(js)
    assert [d["frame"] for d in lines] == list(range(40))
    for d in lines:  # frame i is uniformly class i % 11: the right result reached the right frame
        assert d["class_share"][CLASSES[d["frame"] % NUM_CLASSES]] == 1.0
        assert set(d["ms"]) == {"capture", "preprocess", "infer", "postprocess", "sink"}
    assert count_frames(out) == 40
    pngs = sorted(masks.glob("*.png"))
    assert len(pngs) == 40
    m = cv2.imread(str(pngs[13]), cv2.IMREAD_UNCHANGED)
    assert m.shape == (48, 64) and (m == 13 % NUM_CLASSES).all()
    assert "frames in 40, out 40, dropped 0" in res.stderr


@LAYOUTS
def test_file_slow_model_drops_nothing(tiny_model, inline):
    sink = Collect()
    stats = run_bounded(make_pipeline(FileLikeSource(30), tiny_model, [sink], delay_s=0.01, inline=inline), inline)
    assert stats.frames_in == stats.frames_out == 30 and stats.dropped == 0
    assert [r[0] for r in sink.records] == list(range(30))
    assert [r[1] for r in sink.records] == [i % NUM_CLASSES for i in range(30)]


def test_live_source_keeps_the_newest_frame_and_latency_bounded(tiny_model):
    # camera at 200 FPS, inference at ~40 FPS: most frames must be dropped, and never queue up
    sink = Collect()
    delay = 0.025
    stats = make_pipeline(FakeLiveSource(300, fps=200), tiny_model, [sink], delay_s=delay).run(handle_signals=False)
    assert stats.dropped > stats.frames_out  # far more frames arrive than can be processed
    assert stats.frames_in == stats.frames_out + stats.dropped
    indices = [r[0] for r in sink.records]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert all(r[1] == r[0] % NUM_CLASSES for r in sink.records)
    lat = np.array(stats.latency_ms)
    # the newest frame is taken: a frame waits for about one inference per stage (under 0.1 s here, a few times
    # that on a busy machine). A backlog would make it wait for every frame before it: latency growing frame
    # after frame to seconds (300 frames read in 1.5 s, taken at 40 FPS: the last would wait some 6 s). The
    # bounds are generous on the first, and far below the second.
    assert np.percentile(lat, 95) < 16 * delay * 1e3
    assert lat[-10:].mean() < lat[:10].mean() + 12 * delay * 1e3


@LAYOUTS
def test_stop_drains_what_was_read_and_closes_sinks(tiny_model, inline):
    written = threading.Event()

    class Progress(Collect):  # says when 10 frames have come out: the run is certainly under way
        def write(self, rec):
            super().write(rec)
            if len(self.records) == 10:
                written.set()

    sink = Progress()
    p = make_pipeline(FileLikeSource(100000), tiny_model, [sink], delay_s=0.002, inline=inline)
    # stopped from another thread mid-run (minutes of frames are left), once frames are certainly in flight
    stopper = threading.Thread(target=lambda: written.wait(60) and p.stop(), daemon=True)
    stopper.start()
    stats = run_bounded(p, inline)
    stopper.join(10)
    assert written.is_set() and stats.interrupted
    assert 10 <= stats.frames_out == stats.frames_in < 100000
    assert [r[0] for r in sink.records] == list(range(stats.frames_out))  # every frame read came out, in order
    assert sink.closed


@LAYOUTS
def test_a_failing_stage_stops_the_run_and_still_closes_sinks(tiny_model, inline):
    sink = Collect()
    with pytest.raises(RuntimeError, match="backend failed"):
        run_bounded(make_pipeline(FileLikeSource(50), tiny_model, [sink], fail_at=5, inline=inline), inline)
    assert sink.closed and len(sink.records) <= 5
    # preprocessing failing (in the capture thread, or its own) stops the run the same way
    sink = Collect()
    p = make_pipeline(FileLikeSource(50), tiny_model, [sink], inline=inline)
    real, calls = p.slot.pre, []

    def failing(frame):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("preprocess failed")
        return real(frame)

    p.slot.preprocess = failing
    with pytest.raises(RuntimeError, match="preprocess failed"):
        run_bounded(p, inline)
    assert sink.closed and len(sink.records) <= 3


def test_image_folder_yields_one_output_per_image(tiny_model, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for k in range(5):
        cv2.imwrite(str(src / f"img{k}.jpg"), class_frame(k, (40 + k * 8, 50)))  # sizes differ
    (src / "broken.png").write_bytes(b"not an image")
    js, masks = tmp_path / "f.jsonl", tmp_path / "m"
    res = run_cli("run", src, "--model", tiny_model, "--no-show", "--json", js, "--save-masks", masks, "--output", tmp_path / "o.mp4")
    assert res.returncode == 0, res.stderr
    assert len(frame_lines(js)) == 5
    assert sorted(p.name for p in masks.glob("*.png")) == [f"img{k}.png" for k in range(5)]
    assert cv2.imread(str(masks / "img3.png"), cv2.IMREAD_UNCHANGED).shape == (64, 50)
    assert "broken.png" in res.stderr
    assert count_frames(tmp_path / "o.mp4") == 5


def test_single_image_to_image(tiny_model, tmp_path):
    cv2.imwrite(str(tmp_path / "in.png"), class_frame(8))
    res = run_cli("run", tmp_path / "in.png", "--model", tiny_model, "--no-show", "--output", tmp_path / "out.png", "--alpha", "1")
    assert res.returncode == 0, res.stderr
    out = cv2.imread(str(tmp_path / "out.png"))
    assert tuple(out[10, 10]) == tuple(int(c) for c in PALETTE_RGB[8][::-1])  # Car colour, BGR


def test_null_backend_runs_the_pipeline_without_a_model(tiny_model, clip, tmp_path):
    """`--backend null`: every stage but inference, for the pipeline's own ceiling (a fixed striped class map)."""
    js = tmp_path / "f.jsonl"
    res = run_cli("run", clip, "--model", tiny_model, "--backend", "null", "--no-show", "--json", js, "--output", tmp_path / "o.avi")
    assert res.returncode == 0, res.stderr
    lines = frame_lines(js)
    assert len(lines) == 40 == count_frames(tmp_path / "o.avi")
    assert all(len([s for s in d["class_share"].values() if s > 0]) == NUM_CLASSES for d in lines)


def test_null_backend_answers_as_the_model_would():
    from types import SimpleNamespace

    from rtseg.backends.null import NullBackend

    x = np.zeros((1, 3, 8, 20), np.float32)
    boxes_only = NullBackend(info=SimpleNamespace(classes=("a",) * 5, task="det")).infer(x)
    assert "mask" not in boxes_only and boxes_only["boxes"].shape == (1, 0, 4)
    both = NullBackend(info=SimpleNamespace(classes=("a",) * 5, task="segdet")).infer(x)
    assert both["mask"].shape == (1, 8, 20) and set(np.unique(both["mask"])) == set(range(5)) and "boxes" in both


def test_reorder_buffer_holds_at_most_its_window_and_always_takes_the_frame_due():
    import queue as queue_module

    from rtseg.runtime.channels import ReorderBuffer

    buf = ReorderBuffer(producers=2, window=3)
    for seq in (2, 1):
        buf.put(seq, seq, timeout=0.01)
    with pytest.raises(queue_module.Full):  # 3 and beyond wait until the consumer takes frame 0
        buf.put(3, 3, timeout=0.01)
    buf.put(0, 0, timeout=0.01)  # the frame due next always fits
    assert [buf.get(0.01) for _ in range(3)] == [0, 1, 2]
    buf.put(3, 3, timeout=0.01)
    assert buf.get(0.01) == 3


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_frame_sized_buffers_are_reused_not_faulted_in_afresh(tiny_model, tmp_path):
    import os
    import resource

    from helpers import write_clip

    clip = write_clip(tmp_path / "big.avi", 30, (576, 768))  # frames the size of vtest.avi's

    def page_faults(keep: str) -> int:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
        res = run_cli(
            "run",
            clip,
            "--loop",
            8,
            "--backend",
            "null",
            "--model",
            tiny_model,
            "--no-show",
            "--output",
            tmp_path / "o.mp4",
            "--codec",
            "mp4v",
            env={**os.environ, "RTSEG_KEEP_BUFFERS": keep},
        )
        assert res.returncode == 0, res.stderr
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before

    # glibc's defaults: each frame's megabyte arrays come as fresh pages (about 180 faults a frame here)
    assert page_faults("1") < page_faults("0") - 50 * 240
