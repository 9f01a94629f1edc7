"""Property-based checks (hypothesis) of the per-frame arithmetic: any frame shape and value, any box output."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from rtseg.data.camvid import CLASSES, PALETTE_RGB  # noqa: E402
from rtseg.runtime.postprocess import Detection, Postprocessor  # noqa: E402
from rtseg.runtime.preprocess import Preprocessor  # noqa: E402
from rtseg.runtime.sources import as_bgr  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
sizes = st.tuples(st.integers(1, 70), st.integers(1, 70))


@settings(max_examples=60, deadline=None)
@given(
    frame=st.builds(lambda hw, seed: np.random.default_rng(seed).integers(0, 256, (*hw, 3), np.uint8), sizes, st.integers(0, 2**31)),
    model=st.tuples(st.integers(1, 40), st.integers(1, 40)),
)
def test_preprocess_matches_the_formula_for_any_frame_and_size(frame, model):
    import cv2

    pre = Preprocessor(model, MEAN, STD, pool_size=1)
    x = pre(frame)
    assert x.shape == (1, 3, *model) and x.dtype == np.float32
    rgb = cv2.resize(frame, (model[1], model[0]), interpolation=cv2.INTER_LINEAR)[:, :, ::-1] / 255.0
    expected = ((rgb - MEAN) / STD).transpose(2, 0, 1)
    assert np.allclose(x[0], expected, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(mask=arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 255)), frame_hw=sizes)
def test_masks_shares_and_overlays_for_any_class_map(mask, frame_hw):
    post = Postprocessor(PALETTE_RGB.tolist(), CLASSES, 0.5)
    shares = post.class_shares(mask)
    assert shares.shape == (len(CLASSES),) and 0 <= shares.sum() <= 1 + 1e-6
    assert np.isclose(shares.sum(), (mask < len(CLASSES)).mean())  # ids past the classes (void) count in none
    big = post.resize_mask(mask, (frame_hw[1], frame_hw[0]))
    assert big.shape == frame_hw and set(np.unique(big)) <= set(np.unique(mask))
    frame = np.random.default_rng(len(mask)).integers(0, 256, (*frame_hw, 3), np.uint8)
    out = post.overlay(frame, big)
    assert out.shape == (*frame_hw, 3) and out.dtype == np.uint8
    # coloured at model size, then resized: the very pixels of colouring the frame-size map
    assert (post.overlay(frame, big, small=mask) == out).all()


@settings(max_examples=60, deadline=None)
@given(hw=sizes, seed=st.integers(0, 2**31), alpha=st.sampled_from([0.5, 0.0, 0.3, 1.0]))
def test_overlay_blends_as_the_formula_says_for_any_frame(hw, seed, alpha):
    import cv2

    rng = np.random.default_rng(seed)
    frame, mask = rng.integers(0, 256, (*hw, 3), np.uint8), rng.integers(0, 256, hw, np.uint8)
    post = Postprocessor(PALETTE_RGB.tolist(), CLASSES, alpha)
    colour = cv2.applyColorMap(mask, post.lut)
    exact = frame * (1 - alpha) + colour.astype(np.float64) * alpha
    out = post.overlay(frame, mask)
    assert out.shape == frame.shape and out.dtype == np.uint8
    # alpha 0.5 halves both in integers (the frame's rounded down, the colour's up): within half a level
    assert np.abs(out - exact).max() <= 0.5 + 1e-6
    # a frame in another memory layout (a tensor's permute) gives the same picture, and boxes draw on it
    planar = np.ascontiguousarray(frame.transpose(2, 0, 1)).transpose(1, 2, 0)
    box = Detection((0.0, 0.0, hw[1] / 2, hw[0] / 2), 0.9, 0)
    assert (post.overlay(planar, mask, [box]) == post.overlay(frame, mask, [box])).all()


boxes = arrays(np.float32, st.tuples(st.just(1), st.integers(0, 8), st.just(4)), elements=st.floats(-1e4, 1e4, width=32))


@settings(max_examples=60, deadline=None)
@given(b=boxes, data=st.data(), frame_hw=sizes, input_hw=sizes, threshold=st.floats(0, 1, width=32))
def test_boxes_land_inside_the_frame_with_their_scores(b, data, frame_hw, input_hw, threshold):
    n = b.shape[1]
    scores = data.draw(arrays(np.float32, (1, n), elements=st.floats(0, 1, width=32)))
    labels = data.draw(arrays(np.int64, (1, n), elements=st.integers(0, 5)))
    post = Postprocessor(PALETTE_RGB.tolist(), CLASSES, 0.5, ("Car", "Pedestrian", "Bicyclist"), threshold)
    dets = post.detections({"boxes": b, "scores": scores, "labels": labels}, input_hw, (frame_hw[1], frame_hw[0]))
    assert len(dets) == int((scores >= threshold).sum())
    for d in dets:
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 <= frame_hw[1] and 0 <= x2 <= frame_hw[1] and 0 <= y1 <= frame_hw[0] and 0 <= y2 <= frame_hw[0]
        assert d.score >= threshold
    img = np.zeros((*frame_hw, 3), np.uint8)
    for d in dets:  # drawing any of them, label ids past the names included, never fails
        post.draw_box(img, d)


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=4), dtype=st.sampled_from([np.uint8, np.float32, np.int16, bool]))
def test_any_array_is_a_frame_or_a_one_line_error(shape, dtype):
    from rtseg.core.errors import RtsegError

    a = np.zeros(shape, dtype)
    try:
        out = as_bgr(a)
    except RtsegError as e:
        assert "\n" not in str(e)
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
