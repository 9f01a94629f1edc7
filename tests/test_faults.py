"""Faults users meet, each injected here: damaged and fake inputs, odd paths, wrong models, outputs that
cannot be written. Every one ends in one line and an exit code that says what happened."""

import json
import os

import cv2
import numpy as np
import pytest

from helpers import count_frames, frame_lines, run_cli, write_clip

from rtseg.runtime.stats import Reservoir


def one_line_error(res, code: int = 1) -> str:
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr.strip().splitlines()[-1]


def test_a_truncated_video_says_it_ended_early(tiny_model, tmp_path):
    clip = write_clip(tmp_path / "full.avi", 200, size=(96, 128))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size * 4 // 10])
    js = tmp_path / "f.jsonl"
    res = run_cli("run", cut, "--model", tiny_model, "--no-show", "--json", js, "--stats", tmp_path / "s.json")
    line = one_line_error(res, code=3)
    decoded = count_frames(cut)
    assert f"{decoded} of the 200 frames" in line and 0 < decoded < 200
    assert len(frame_lines(js)) == decoded  # every decodable frame still has its output
    assert json.loads((tmp_path / "s.json").read_text())["ended_early"] is True
    full = run_cli("run", clip, "--model", tiny_model, "--no-show")
    assert full.returncode == 0 and "ended early" not in full.stderr


def test_unreadable_images_are_reported_not_called_an_early_end(tiny_model, tmp_path):
    for k in range(4):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((30, 40, 3), 40 * k, np.uint8))
    for k in range(3):
        (tmp_path / f"bad{k}.png").write_bytes(b"\x89PNG broken")
    res = run_cli("run", tmp_path, "--model", tiny_model, "--no-show")
    assert res.returncode == 0 and "unreadable inputs skipped" in res.stderr and "ended early" not in res.stderr


def test_dark_raw_video_is_not_taken_for_text(tmp_path):
    from rtseg.runtime.sources import _looks_like_text

    raw = tmp_path / "dark.y4m"
    raw.write_bytes(b"YUV4MPEG2 W64 H48 F25:1 C420jpeg\nFRAME\n" + bytes([16]) * 4096)
    text = tmp_path / "notes.mp4"
    text.write_text("plain words\n" * 400)
    assert not _looks_like_text(raw) and _looks_like_text(text)


def test_a_text_file_is_not_a_video(tiny_model, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n" * 200)
    assert "a text file, not a video" in one_line_error(run_cli("run", fake, "--model", tiny_model, "--no-show"))


def test_paths_with_brackets_are_files_not_globs(tiny_model, tmp_path):
    img = tmp_path / "shot[1].png"
    cv2.imwrite(str(img), np.full((40, 50, 3), 60, np.uint8))
    res = run_cli("run", img, "--model", tiny_model, "--no-show", "--output", tmp_path / "out[1].png")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out[1].png").exists()


def test_an_unwritable_stats_path_fails_before_any_work(tiny_model, clip, tmp_path):
    out = tmp_path / "o.avi"
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", out, "--stats", tmp_path / "no" / "s.json")
    assert "--stats" in one_line_error(res) and not out.exists()


def test_a_classifier_is_refused_at_load(tmp_path, clip):
    pytest.importorskip("onnx")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["scores"])],
        "classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "classifier.onnx"))
    line = one_line_error(run_cli("run", clip, "--model", tmp_path / "classifier.onnx", "--no-show"))
    assert "not a segmentation or box model" in line and "scores (1, 3)" in line


def test_a_damaged_manifest_entry_is_one_line(tmp_path, clip, tiny_model):
    (tmp_path / "m.onnx").write_bytes(tiny_model.read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps({"default": "m", "models": [{"name": "m", "file": "m.onnx"}]}))
    env = {**os.environ, "RTSEG_ENGINES_DIR": str(tmp_path)}
    line = one_line_error(run_cli("run", clip, "--no-show", env=env))
    assert "manifest entry 'm'" in line and "damaged" in line


def test_statistics_stay_bounded_on_long_runs():
    r = Reservoir(cap=1000)
    for i in range(200_000):
        r.append(float(i))  # a trend: a sample of only the first (or last) values would show it
    assert len(r) == 1000 and r.count == 200_000
    assert 80_000 < float(np.median(r)) < 120_000  # a fair sample of the whole run


def _with_file_size_limit(limit_bytes: int):
    """A child whose files may not grow past `limit_bytes`: writes fail with EFBIG, as on a full disk
    (Python ignores SIGXFSZ, so the write returns an error instead of killing the process)."""
    import resource

    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


@pytest.mark.parametrize("option,what", [("--json", "cannot write JSON"), ("--save-masks", "cannot write mask")])
def test_an_output_that_fills_up_stops_the_run_in_one_line(tiny_model, tmp_path, option, what):
    import subprocess
    import sys

    clip = tmp_path / "noise.avi"  # noisy frames: masks that do not compress, so each PNG passes the limit
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 96))
    rng = np.random.default_rng(0)
    for _ in range(400):
        writer.write(rng.integers(0, 256, (96, 128, 3), np.uint8))
    writer.release()
    target = tmp_path / ("f.jsonl" if option == "--json" else "masks")
    res = subprocess.run(
        [sys.executable, "-m", "rtseg", "run", str(clip), "--model", str(tiny_model), "--no-show", option, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_with_file_size_limit(1_500),
    )
    line = one_line_error(res)
    assert what in line


@pytest.mark.parametrize("codec", ["h264", "mp4v"])
def test_pyav_output_that_fills_up_stays_playable_to_its_last_fragment(tiny_model, tmp_path, codec):
    import subprocess
    import sys

    av = pytest.importorskip("av")
    clip = write_clip(tmp_path / "c.avi", 400, size=(240, 320))
    out = tmp_path / "o.mp4"
    res = subprocess.run(
        [sys.executable, "-m", "rtseg", "run", str(clip), "--model", str(tiny_model), "--no-show", "--output", str(out), "--codec", codec],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_with_file_size_limit(20_000),
    )
    assert "cannot write video" in one_line_error(res)
    decoded = 0
    with av.open(str(out)) as c:  # fragmented MP4: what was written before the failure plays
        try:
            for _ in c.decode(video=0):
                decoded += 1
        except av.error.FFmpegError:
            pass  # the cut-off fragment at the end
    assert decoded > 0


def test_opencv_video_output_that_fills_up_is_an_error_not_a_success(tiny_model, tmp_path):
    import subprocess
    import sys

    clip = write_clip(tmp_path / "c.avi", 400, size=(240, 320))
    # AVI is always OpenCV's writer (MP4 is PyAV's whenever PyAV is installed)
    res = subprocess.run(
        [sys.executable, "-m", "rtseg", "run", str(clip), "--model", str(tiny_model), "--no-show", "--output", str(tmp_path / "o.avi")],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_with_file_size_limit(20_000),
    )
    line = one_line_error(res)
    assert "cannot write video" in line and "of the 400 frames written" in line
