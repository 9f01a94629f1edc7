"""rtseg bench on tiny models and a short synthetic clip: rows, files, Pareto marking."""

import json

import pytest

torch = pytest.importorskip("torch")

from helpers import make_tiny_zoo, run_cli, write_clip  # noqa: E402

from rtseg.evaluation.bench import pareto_flags  # noqa: E402


def test_pareto_flags_on_known_points():
    # (fps, accuracy): b dominates d (faster and more accurate); a, b, c trade off; e ties b's accuracy but slower
    pts = {"a": (200, 0.50), "b": (100, 0.60), "c": (50, 0.70), "d": (80, 0.55), "e": (90, 0.60)}
    assert dict(zip(pts, pareto_flags(list(pts.values())))) == {"a": True, "b": True, "c": True, "d": False, "e": False}


@pytest.fixture
def tiny_zoo(tmp_path):
    return make_tiny_zoo(tmp_path / "engines")


def test_bench_writes_tables_and_plot(tiny_zoo, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 20, size=(96, 128))
    out = tmp_path / "out"
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(tiny_zoo)}
    res = run_cli("bench", "--video", clip, "--iters", "5", "--reps", "1", "--frames", "20", "--out", out, "--quiet", env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for f in ("bench.md", "bench.csv", "bench.json", "bench.png"):
        assert (out / f).stat().st_size > 0
    data = json.loads((out / "bench.json").read_text())
    rows = data["rows"]
    kinds = [(r["kind"], r["backend"]) for r in rows]
    assert kinds.count(("ours", "onnxruntime")) == 2 and kinds.count(("ours", "torch")) == 2
    assert kinds.count(("peer", "onnxruntime")) == 2 and ("naive", "torch") in kinds
    for r in rows:
        assert r["e2e_fps"] > 0
    ours = [r for r in rows if r["kind"] == "ours"]
    assert all(r["model_fps"] > 0 and r["miou"] in (0.40, 0.45) for r in ours)
    assert rows[0]["vs_ours"] == 1.0  # the reference is the first model on ONNX Runtime
    assert any(r["pareto"] for r in ours)
    assert {"command", "date", "machine", "versions"} <= set(data["environment"])
    assert "| model | backend |" in (out / "bench.md").read_text()


def test_bench_without_pytorch_measures_onnx_runtime_and_says_what_it_skips(tiny_zoo, tmp_path):
    """The runtime install has no PyTorch: bench says so before any work and measures the ONNX Runtime rows."""
    import subprocess
    import sys

    clip = write_clip(tmp_path / "clip.avi", 20, size=(96, 128))
    hide = "import sys; sys.modules['torch'] = sys.modules['torchvision'] = None; from rtseg.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(tiny_zoo)}
    res = subprocess.run(
        [sys.executable, "-c", hide, "bench", "--video", str(clip), "--quick", "--frames", "20", "--out", str(tmp_path / "out"), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    first = res.stderr.splitlines()[0]
    assert "PyTorch is not installed" in first and "naive" in first
    rows = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert {(r["kind"], r["backend"]) for r in rows} == {("ours", "onnxruntime")}


def test_quick_bench_is_the_default_the_fastest_model_and_the_naive_loop(tiny_zoo, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 20, size=(96, 128))
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(tiny_zoo), "RTSEG_CACHE_DIR": str(tmp_path / "cache")}
    res = run_cli("bench", "--video", clip, "--quick", "--frames", "20", "--out", tmp_path / "out", "--quiet", env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    kinds = [(r["kind"], r["backend"]) for r in rows]
    assert ("peer", "onnxruntime") not in kinds and ("ours", "torch") not in kinds and ("naive", "torch") in kinds
    assert 1 <= kinds.count(("ours", "onnxruntime")) <= 2


def test_bench_measures_each_model_with_key_frames_too(tiny_zoo, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 20, size=(96, 128))
    out = tmp_path / "out"
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(tiny_zoo)}
    res = run_cli(
        "bench",
        "--video",
        clip,
        *"--quick --frames 20 --out".split(),
        out,
        *"--quiet --backends onnxruntime --no-peers --no-naive --keyframes 2,auto".split(),
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads((out / "bench.json").read_text())["rows"]
    names = [r["model"] for r in rows]
    for plain in [n for n in names if "keyframe" not in n]:
        assert f"{plain} keyframe 2" in names and f"{plain} keyframe auto" in names
    import re

    every_2nd = [r for r in rows if r["model"].endswith("keyframe 2")]
    assert every_2nd and all(r["e2e_fps"] > 0 for r in every_2nd)
    # every 2nd frame, and a key frame forced where the synthetic clip jumps from its last grey to its first
    assert all(10 <= int(re.search(r"model on (\d+) of 20 frames", r["note"])[1]) <= 11 for r in every_2nd)
    bad = run_cli("bench", "--video", clip, "--quick", "--keyframes", "0", "--out", out, env=env)
    assert bad.returncode != 0 and "--keyframes" in bad.stderr and "Traceback" not in bad.stderr
