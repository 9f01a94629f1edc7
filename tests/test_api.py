"""The Python API as users call it: `Segmenter(frame) -> Result`, `stream(source)`, `models()`."""

import gc
import re
import threading
import tracemalloc

import numpy as np
import pytest

from helpers import NUM_CLASSES, class_frame, frame_lines, write_clip

import rtseg
from rtseg.core.errors import RtsegError


@pytest.fixture()
def seg(tiny_model):
    with rtseg.Segmenter(tiny_model, backend="onnxruntime", threads=1) as s:
        yield s


def test_public_names_load_lazily():
    assert {"Segmenter", "stream", "Result", "list_models"} <= set(rtseg.__all__)
    import importlib

    importlib.import_module("rtseg.models")  # the network definitions: a subpackage, not the API
    assert callable(rtseg.list_models)
    assert rtseg.Segmenter.__module__ == "rtseg.api.segmenter"
    with pytest.raises(AttributeError):
        rtseg.nothing_here  # noqa: B018


def test_segmenter_result_is_the_class_map_at_frame_size(seg):
    res = seg(class_frame(3, (50, 70)))
    assert res.mask.shape == (50, 70) and res.mask.dtype == np.uint8
    assert (res.mask == 3).all()
    assert res.classes[3] == "Road" and res.class_share["Road"] == pytest.approx(1.0)
    assert res.boxes.shape == (0, 4) and res.scores.shape == (0,) and res.class_ids.shape == (0,)
    assert set(res.ms) == {"preprocess", "infer", "postprocess"} and all(v >= 0 for v in res.ms.values())
    assert res.overlay().shape == (50, 70, 3)
    assert res.to_dict()["class_share"]["Road"] == pytest.approx(1.0)


def test_segmenter_takes_greys_and_image_paths(seg, tmp_path):
    import cv2

    grey = class_frame(5)[:, :, 0]
    assert (seg(grey).mask == 5).all()
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), class_frame(7))
    res = seg(path)
    assert (res.mask == 7).all() and res.file == str(path)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 5), np.uint8), "missing.png", 3])
def test_segmenter_refuses_what_is_not_a_frame(seg, bad):
    with pytest.raises(RtsegError):
        seg(bad)


def test_overlay_legend_and_alpha(seg):
    frame = class_frame(1, (200, 300))
    res = seg(frame)
    plain, legend = res.overlay(), res.overlay(legend=True)
    assert (plain != legend).any() and (plain[:, :100] == legend[:, :100]).all()  # only the top-right corner
    assert (res.overlay(alpha=0.0) == frame).all()


def test_stream_yields_every_frame_in_order(tiny_model, clip):
    with rtseg.stream(clip, model=tiny_model, backend="onnxruntime") as results:
        got = [(r.index, int(np.bincount(r.mask.ravel()).argmax())) for r in results]
    assert got == [(i, i % NUM_CLASSES) for i in range(40)]
    assert results.stats.frames_in == results.stats.frames_out == 40


def test_stream_of_arrays_and_segmenter_stream(seg):
    frames = (class_frame(k % NUM_CLASSES) for k in range(25))  # a generator: length unknown
    classes = [int(r.mask[0, 0]) for r in seg.stream(frames)]
    assert classes == [k % NUM_CLASSES for k in range(25)]
    assert (seg(class_frame(2)).mask == 2).all()  # the segmenter still works after its stream


def test_leaving_a_stream_early_stops_the_pipeline(tiny_model, tmp_path):
    clip = write_clip(tmp_path / "long.avi", 300)
    before = threading.active_count()
    with rtseg.stream(clip, model=tiny_model, backend="onnxruntime", output=str(tmp_path / "o.avi")) as results:
        for i, _ in enumerate(results):
            if i == 5:
                break
    assert results.stats.interrupted and results.stats.frames_out < 300
    assert threading.active_count() <= before
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "o.avi"))  # what was written is a playable file
    assert cap.read()[0]


def test_stream_errors_reach_the_caller(tiny_model, tmp_path):
    with pytest.raises(RtsegError, match="no such file"):
        rtseg.stream(tmp_path / "missing.mp4", model=tiny_model)
    with pytest.raises(RtsegError, match="unknown model"):
        rtseg.stream([class_frame(0)], model="no-such-model")


@pytest.mark.parametrize(
    "options, says",
    [
        ({"loop": 0}, "loop must be 1 or more"),
        ({"threads": -1}, "threads must be 0 or more"),
        ({"alpha": 1.5}, "opacity, from 0 to 1"),
        ({"task": "depth"}, "unknown task 'depth'"),
        ({"precision": "int4"}, "precision 'int4'"),
        ({"input_size": (0, 320)}, "(height, width)"),
    ],
)
def test_bad_settings_are_one_clear_error_before_any_work(tiny_model, clip, options, says):
    # the settings (runtime/settings.py) check themselves, whichever front builds them: the API as the CLI
    frames = (np.zeros((64, 64, 3), np.uint8) for _ in range(3))
    with pytest.raises(RtsegError, match=re.escape(says)):
        rtseg.stream(frames, str(tiny_model), backend="onnxruntime", **options)
    with pytest.raises(RtsegError, match=re.escape(says)):
        rtseg.stream_many([str(clip)], str(tiny_model), backend="onnxruntime", **options)


@pytest.mark.parametrize("option", ["output", "save_masks", "json"])
def test_an_empty_output_path_is_refused_from_python_too(tiny_model, option):
    # as `--output ""` is on the command line: an unset variable must not run and write nothing (or into '.')
    frames = (np.zeros((64, 64, 3), np.uint8) for _ in range(3))
    with pytest.raises(RtsegError, match="needs a path, got an empty one"):
        rtseg.stream(frames, str(tiny_model), backend="onnxruntime", **{option: ""})


def within(seconds: float, fn):
    """Run `fn` in a thread; a hang becomes a test failure instead of a CI job that never ends."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s: hung"
    return out.get("value")


def _heap_mib() -> float:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 2**20


def test_ten_thousand_frames_flat_memory_no_hang(seg, tiny_model):
    """The pooled input buffers always go back: frame 9 (and 10,000) never waits for a lost buffer."""
    frame = class_frame(4, (48, 64))

    def calls():
        for _ in range(10_000):
            res = seg(frame)
        return res

    def streamed():
        with rtseg.stream((frame for _ in range(10_000)), model=tiny_model, backend="onnxruntime") as results:
            n = sum(1 for _ in results)
        return n, results.stats

    tracemalloc.start()
    try:
        for _ in range(200):
            seg(frame)
        start = _heap_mib()
        assert (within(120, calls).mask == 4).all()
        after_calls = _heap_mib()
        n, stats = within(240, streamed)
        after_stream = _heap_mib()
    finally:
        tracemalloc.stop()
    assert n == 10_000 and stats.frames_out == 10_000
    assert after_calls - start < 1.0, f"Segmenter grew {after_calls - start:.2f} MiB over 10,000 frames"
    # the run's statistics keep bounded samples; frames themselves must not accumulate (each is 9 KiB)
    assert after_stream - start < 8.0, f"stream grew {after_stream - start:.2f} MiB over 10,000 frames"


def test_models_lists_the_shipped_zoo():
    cards = rtseg.list_models()
    assert cards and sum(c.default for c in cards) == 1
    default = next(c for c in cards if c.default)
    # the default is chosen on the drive-disjoint split (issue 11): it has a held-out figure
    assert default.task == "seg" and len(default.classes) == 11 and default.heldout_miou > 0.3
    assert default.heldout_split == "holdout:0006R0"


def test_segmenter_streams_can_be_left_early_again_and_again(seg):
    """Each early exit gives every pooled buffer back: the tenth stream and the next call still run."""
    for _ in range(10):
        with seg.stream(class_frame(k % NUM_CLASSES) for k in range(100)) as results:
            next(results)
    assert within(30, lambda: seg(class_frame(6))).mask[0, 0] == 6


def test_calling_the_segmenter_during_its_stream_mixes_nothing(seg):
    got, calls = [], []
    for r in seg.stream(class_frame(k % NUM_CLASSES) for k in range(300)):
        got.append(int(r.mask[0, 0]) == r.index % NUM_CLASSES)
        calls.append(int(seg(class_frame(9)).mask[0, 0]) == 9)
    assert all(got) and all(calls) and len(got) == 300


def test_close_from_another_thread_wakes_the_consumer(tiny_model):
    import time

    def slow():
        for k in range(1000):
            time.sleep(0.01)
            yield class_frame(k % NUM_CLASSES)

    results = rtseg.stream(slow(), model=tiny_model, backend="onnxruntime")
    threading.Timer(0.3, results.close).start()
    n = within(10, lambda: sum(1 for _ in results))
    assert n < 1000 and not results.running


def test_stream_of_arrays_writes_video_at_frame_size(tiny_model, tmp_path):
    import cv2

    out = tmp_path / "o.avi"
    frames = [class_frame(k % NUM_CLASSES, (200, 300)) for k in range(12)]
    with rtseg.stream(frames, model=tiny_model, backend="onnxruntime", output=str(out)) as results:
        assert sum(1 for _ in results) == 12
    cap = cv2.VideoCapture(str(out))
    ok, first = cap.read()
    assert ok and first.shape == (200, 300, 3)


def test_closing_the_segmenter_stops_its_streams(tiny_model):
    seg = rtseg.Segmenter(tiny_model, backend="onnxruntime", threads=1)
    results = seg.stream(class_frame(1) for _ in range(100_000))
    next(results)
    within(10, seg.close)
    assert not results.running


def test_to_supervision_gives_one_region_per_class_present(seg):
    sv = pytest.importorskip("supervision")
    frame = np.concatenate([class_frame(1, (20, 30)), class_frame(3, (20, 30))])  # top Building, bottom Road
    det = seg(frame).to_supervision()
    assert isinstance(det, sv.Detections) and sorted(det.data["class_name"]) == ["Building", "Road"]
    road = list(det.class_id).index(3)
    assert det.mask[road].sum() == 20 * 30 and tuple(det.xyxy[road]) == (0, 20, 29, 39)


def test_the_segnet_example_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "segnet.py"),
            str(root / "examples" / "camvid_0016E5.mp4"),
            "--no-show",
            "--output",
            str(tmp_path / "o.mp4"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "101 frames" in res.stdout and (tmp_path / "o.mp4").stat().st_size > 0


def test_a_model_and_a_target_rate_together_are_refused_not_half_ignored(tiny_model, clip):
    import rtseg

    with pytest.raises(rtseg.RtsegError, match="not both"):
        rtseg.stream(clip, model=tiny_model, target_fps=30)
    with pytest.raises(rtseg.RtsegError, match="not both"):
        rtseg.Segmenter(tiny_model, target_fps=30)


# -- one call for any source, and results that save and show themselves --------------------------------
def test_segmenter_takes_a_list_a_folder_a_video_and_streams_them(seg, tmp_path):
    import cv2

    frames = [class_frame(k) for k in (1, 2, 3)]
    assert [int(r.mask[0, 0]) for r in seg(frames)] == [1, 2, 3]  # a list: a list, in order
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), f)
    assert [int(r.mask[0, 0]) for r in seg(folder)] == [1, 2, 3]
    assert [int(r.mask[0, 0]) for r in seg([folder / "2.png", folder / "0.png"])] == [3, 1]
    clip = write_clip(tmp_path / "c.avi", 12)
    results = seg(clip)
    assert isinstance(results, list) and [r.index for r in results] == list(range(12))
    assert [int(r.mask[0, 0]) for r in results] == [i % NUM_CLASSES for i in range(12)]
    streamed = seg(clip, stream=True, keyframe=3)  # a generator, as peers' model(source, stream=True)
    with streamed:
        flags = [r.inferred for r in streamed]
    assert len(flags) == 12 and flags[0] and not all(flags)
    with pytest.raises(RtsegError, match="stream=True"):
        seg(clip, realtime=True)  # paced like a camera: live, it would never end
    with pytest.raises(RtsegError, match="no such file"):
        seg(tmp_path / "missing.mp4")


def test_result_saves_its_overlay_and_mask_and_never_over_its_image(seg, tmp_path):
    import cv2

    src = tmp_path / "street.png"
    cv2.imwrite(str(src), class_frame(4))
    res = seg(src)
    assert res.save(tmp_path / "o.jpg") == tmp_path / "o.jpg"
    assert cv2.imread(str(tmp_path / "o.jpg")).shape == (48, 64, 3)
    res.save(tmp_path / "m.png", what="mask")
    assert (cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED) == 4).all()
    before = src.read_bytes()
    with pytest.raises(RtsegError, match="the image this result describes"):
        res.save(tmp_path / "." / "street.png")
    assert src.read_bytes() == before
    with pytest.raises(RtsegError, match="lossless"):
        res.save(tmp_path / "m.jpg", what="mask")
    with pytest.raises(RtsegError):
        res.save(tmp_path / "o.nope")
    assert res._repr_png_().startswith(b"\x89PNG")  # what a notebook shows


def test_show_without_a_display_says_how_to_save_instead(seg, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(RtsegError, match="save"):
        seg(class_frame(1)).show()


def test_json_lines_say_which_source_and_frame_size(tiny_model, tmp_path):

    from helpers import run_cli

    clip = write_clip(tmp_path / "c.avi", 5, size=(48, 64))
    js = tmp_path / "f.jsonl"
    r = run_cli("run", clip, "--model", tiny_model, "--no-show", "--json", js)
    assert r.returncode == 0, r.stderr
    lines = frame_lines(js)
    assert {(d["source"], tuple(d["size"])) for d in lines} == {(str(clip), (64, 48))}
