"""Frames kept in YUV 4:2:0 (runtime/yuv.py): chosen only when every sink takes them and the file allows it,
every frame still comes out in order with its own result, and the pixels agree with the BGR path's."""

import cv2
import numpy as np
import pytest

from helpers import NUM_CLASSES, class_frame, count_frames, frame_lines, run_cli, write_clip
from test_pipeline import Collect, make_slot, run_bounded

from rtseg.data.camvid import CLASSES, PALETTE_RGB
from rtseg.runtime import yuv
from rtseg.runtime.pipeline import Pipeline
from rtseg.runtime.postprocess import Postprocessor
from rtseg.runtime.preprocess import Preprocessor
from rtseg.runtime.sinks import Sink
from rtseg.runtime.slot import ModelSlot
from rtseg.runtime.sources import LimitedSource, LoopedSource, PacedSource, open_source
from rtseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def yuv_clip(tmp_path_factory):
    # MPEG-4 Part 2 decodes to plain (limited-range) YUV 4:2:0, as most camera and phone files do
    return write_clip(tmp_path_factory.mktemp("yuv") / "clip.mp4", 30, fourcc="mp4v")


class CollectI420(Collect):
    takes_i420 = True

    def write(self, rec):
        super().write(rec)
        self.kinds = getattr(self, "kinds", []) + [(rec.image is None, rec.i420 is not None, rec.overlay_i420 is not None)]


def frame_pairs(n=4, size=(96, 128), seed=0):
    """Textured frames with smooth colour, as camera pictures (4:2:0 keeps a colour per 2x2 block, then half
    that at model size on the I420 path), and class maps constant on 2x2 blocks (one class per chroma sample).
    Colours stay inside what RGB can show once subsampled: where a pixel's own luma and its block's colour do
    not (saturated edges), the BGR path clips before blending and the I420 path after, a few levels apart."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        colour = cv2.resize(
            rng.integers(40, 216, (size[0] // 16, size[1] // 16, 3), dtype=np.uint8), size[::-1], interpolation=cv2.INTER_LINEAR
        )
        luma = rng.integers(-12, 13, (*size, 1))
        frame = np.clip(colour.astype(int) + luma, 0, 255).astype(np.uint8)
        small = rng.integers(0, NUM_CLASSES + 1, (size[0] // 2, size[1] // 2), dtype=np.uint8)  # 11: void
        yield frame, small


@pytest.mark.parametrize("inline", [True, False], ids=["preprocess-in-capture", "preprocess-thread"])
def test_a_yuv_file_stays_i420_and_every_frame_gets_its_own_result(tiny_model, yuv_clip, inline):
    sink = CollectI420()
    p = Pipeline(open_source(str(yuv_clip)), make_slot(tiny_model), [sink], preprocess_in_capture=inline)
    stats = run_bounded(p, inline)
    assert p.frames_i420 and stats.frames_in == stats.frames_out == 30
    assert [r[0] for r in sink.records] == list(range(30))
    assert [r[1] for r in sink.records] == [i % NUM_CLASSES for i in range(30)]  # the right result, right frame
    assert all(kind == (True, True, True) for kind in sink.kinds)


def test_a_model_switch_mid_run_keeps_every_frame_right(tiny_model, yuv_clip, tmp_path):
    from rtseg.backends import load_backend
    from rtseg.core.modelinfo import ModelInfo

    from helpers import nearest_centre_onnx

    other = nearest_centre_onnx(tmp_path / "any_size.onnx", dynamic=True)  # another input size, odd on purpose
    info = ModelInfo(name="other", path=other, input_size=(33, 47))
    second = ModelSlot(
        info,
        load_backend("onnxruntime", str(other), threads=1),
        Preprocessor((33, 47), IMAGENET_MEAN, IMAGENET_STD, pool_size=5),
        Postprocessor(PALETTE_RGB.tolist(), CLASSES),
    )

    class SwitchAt10(CollectI420):
        def write(self, rec):
            super().write(rec)
            if rec.index == 10:
                p.switch_to(second)  # frames read from now on: the selector's way

    sink = SwitchAt10()
    p = Pipeline(open_source(str(yuv_clip)), make_slot(tiny_model), [sink])
    models = []
    p.on_frame = lambda rec: models.append(rec.model)
    assert p.run(handle_signals=False).frames_out == 30 and p.frames_i420
    assert [r[1] for r in sink.records] == [i % NUM_CLASSES for i in range(30)]
    assert models[0] == "tiny" and models[-1] == "other" and all(r[2] == (48, 64) for r in sink.records)


def test_a_sink_that_needs_bgr_keeps_the_run_in_bgr(tiny_model, yuv_clip):
    seen = []

    class NeedsBgr(Sink):
        def write(self, rec):
            seen.append((rec.image is not None, rec.overlay is not None, rec.i420 is None))

    p = Pipeline(open_source(str(yuv_clip)), make_slot(tiny_model), [CollectI420(), NeedsBgr()])
    assert p.run(handle_signals=False).frames_out == 30
    assert not p.frames_i420 and seen == [(True, True, True)] * 30


def test_i420_can_be_turned_off(tiny_model, yuv_clip):
    p = Pipeline(open_source(str(yuv_clip)), make_slot(tiny_model), [CollectI420()], i420=False)
    p.run(handle_signals=False)
    assert not p.frames_i420


def test_a_file_played_in_real_time_can_stay_i420(tiny_model, yuv_clip):
    sink = CollectI420()
    p = Pipeline(PacedSource(open_source(str(yuv_clip))), make_slot(tiny_model), [sink])
    stats = p.run(handle_signals=False)
    assert p.frames_i420 and p.live and 0 < stats.frames_out <= 30
    assert all(r[1] == r[0] % NUM_CLASSES for r in sink.records)  # newest-frame drops, never a wrong result


def test_a_source_asked_for_i420_closes_cleanly_unread(yuv_clip):
    source = open_source(str(yuv_clip))
    assert source.decode_to_i420() and source.decode_to_i420()  # asking twice is harmless
    source.close()


def test_full_range_mjpeg_is_kept_in_bgr(clip):
    # JPEG's YUV is full range: converting it as limited range would shift every colour
    assert not open_source(str(clip)).decode_to_i420()


def test_limited_and_looped_files_pass_the_request_on(tiny_model, yuv_clip):
    sink = CollectI420()
    p = Pipeline(LoopedSource(lambda: open_source(str(yuv_clip)), 2), make_slot(tiny_model), [sink])
    assert p.run(handle_signals=False).frames_out == 60 and p.frames_i420
    assert [r[1] for r in sink.records] == [i % NUM_CLASSES for i in range(30)] * 2
    assert all(kind[1] for kind in sink.kinds)  # the second pass too
    limited = LimitedSource(open_source(str(yuv_clip)), 7)
    assert limited.decode_to_i420()
    assert sum(1 for _ in iter(limited.read, None)) == 7


def test_a_truncated_yuv_file_ends_cleanly_with_what_it_holds(tiny_model, tmp_path):
    full = write_clip(tmp_path / "full.avi", 40, fourcc="FMP4")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    runs = {}
    for i420 in (True, False):
        sink = CollectI420()
        p = Pipeline(open_source(str(cut)), make_slot(tiny_model), [sink], i420=i420)
        stats = p.run(handle_signals=False)
        assert p.frames_i420 is i420 and 0 < stats.frames_in == stats.frames_out < 40
        runs[i420] = [r[1] for r in sink.records]
    assert runs[True][:-1] == [i % NUM_CLASSES for i in range(len(runs[True]) - 1)]  # the last may be partial
    assert len(runs[True]) >= len(runs[False]) - 1  # what OpenCV's reader gets of it, give or take that frame


def test_cli_writes_h264_and_masks_from_i420_frame_for_frame(tiny_model, yuv_clip, tmp_path):
    out, js, masks = tmp_path / "out.mp4", tmp_path / "f.jsonl", tmp_path / "masks"
    res = run_cli(
        "run", yuv_clip, "--model", tiny_model, "--no-show", "--output", out, "--codec", "h264", "--json", js, "--save-masks", masks
    )
    assert res.returncode == 0, res.stderr
    assert "frames kept in YUV 4:2:0" in res.stderr
    m = cv2.imread(str(sorted(masks.glob("*.png"))[13]), cv2.IMREAD_UNCHANGED)  # made from the model's map on demand
    assert m.shape == (48, 64) and (m == 13 % NUM_CLASSES).all()
    lines = frame_lines(js)
    assert [d["frame"] for d in lines] == list(range(30))
    assert all(d["class_share"][CLASSES[d["frame"] % NUM_CLASSES]] == 1.0 for d in lines)
    assert count_frames(out) == 30
    # the overlay's colour: frame/2 + class colour/2, as the BGR path draws it
    cap = cv2.VideoCapture(str(out))
    for i in range(3):
        got = cap.read()[1][10:38, 10:54].reshape(-1, 3).mean(0)
        want = class_frame(i % NUM_CLASSES)[0, 0] / 2 + np.asarray(PALETTE_RGB[i % NUM_CLASSES][::-1]) / 2
        assert np.abs(got - want).max() <= 6, (i, got, want)


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_i420_overlay_is_the_bgr_overlay_in_i420(alpha):
    post = Postprocessor(PALETTE_RGB.tolist(), CLASSES, alpha=alpha)
    for frame, small in frame_pairs():
        i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
        mask = post.resize_mask(small, (frame.shape[1], frame.shape[0]))
        want = post.overlay(yuv.to_bgr(i420), mask)
        blended = post.blend_i420(i420, small)
        diff = cv2.absdiff(yuv.to_bgr(blended), want)
        assert diff.mean() < 1.0 and diff.max() <= 4
        if alpha == 0.5:  # colours looked up at model size, then resized: exactly the frame-size lookup's luma
            y = yuv.planes(i420)[0]
            assert (yuv.planes(blended)[0] == (y >> 1) + post.half_yuv_lut[0][mask]).all()


def test_i420_input_is_the_bgr_input_within_a_few_levels():
    pre = Preprocessor((48, 64), IMAGENET_MEAN, IMAGENET_STD, pool_size=2)
    want, got = pre.pool.acquire(), pre.pool.acquire()
    for frame, _ in frame_pairs():
        i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
        pre(yuv.to_bgr(i420), out=want)
        pre.from_i420(i420, out=got)
        levels = np.abs(got - want) * np.asarray(IMAGENET_STD, np.float32)[:, None, None] * 255  # in 0-255 steps
        assert levels.mean() < 3.0 and got.shape == want.shape == (1, 3, 48, 64)


def test_odd_model_sizes_are_fine_and_boxes_take_the_bgr_way(tiny_model):
    frame = class_frame(3, (48, 64))
    i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    odd = Preprocessor((47, 63), IMAGENET_MEAN, IMAGENET_STD, pool_size=1)
    assert odd.from_i420(i420).shape == (1, 3, 47, 63)
    slot = make_slot(tiny_model)
    slot.post = Postprocessor(PALETTE_RGB.tolist(), CLASSES, det_classes=("car",))
    outputs = slot.infer(slot.preprocess_i420(i420))
    plain = slot.postprocess_i420(i420, dict(outputs))
    assert plain.overlay is None and plain.overlay_i420.shape == i420.shape and (plain.mask == 3).all()
    boxed = slot.postprocess_i420(
        i420,
        {**outputs, "boxes": np.array([[[4, 4, 40, 30]]], np.float32), "scores": np.array([[0.9]], np.float32), "labels": np.array([[0]])},
    )
    assert boxed.overlay_i420 is None and boxed.overlay.shape == frame.shape and len(boxed.detections) == 1
