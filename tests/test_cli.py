"""CLI paths beyond files: network streams, the model list, the target-FPS report."""

import json
import shutil
import subprocess
import sys

import pytest

from helpers import count_frames, frame_lines, run_cli, write_clip


@pytest.fixture
def http_clip(tmp_path):
    """A clip served over HTTP by a local server: a stream URL that FFmpeg really opens."""
    write_clip(tmp_path / "clip.avi", 30)
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port NNNNN ..."
    port = int(line.split("port")[1].split()[0])
    yield f"http://127.0.0.1:{port}/clip.avi"
    server.terminate()
    server.wait()


def test_stream_url_is_live_and_accounts_for_every_frame(tiny_model, http_clip, tmp_path):
    stats = tmp_path / "s.json"
    res = run_cli("run", http_clip, "--model", tiny_model, "--no-show", "--stats", stats, "--json", tmp_path / "f.jsonl")
    assert res.returncode == 0, res.stderr
    s = json.loads(stats.read_text())
    assert s["frames_out"] > 0
    assert s["frames_in"] == s["frames_out"] + s["dropped"]  # live: each frame either processed or dropped
    assert len(frame_lines(tmp_path / "f.jsonl")) == s["frames_out"]


def test_target_fps_is_reported(tiny_model, clip):
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--target-fps", "1")
    assert res.returncode == 0 and "target 1 FPS met" in res.stderr


def test_models_lists_the_manifest(tiny_model, clip, tmp_path):
    from rtseg.core.manifest import Manifest
    from rtseg.core.modelinfo import sha256

    shutil.copy(tiny_model, tmp_path / "tiny.onnx")
    Manifest(
        tmp_path / "manifest.json",
        default="tiny",
        models=[
            {
                "name": "tiny",
                "file": "tiny.onnx",
                "task": "seg",
                "input_size": [64, 80],
                "params": 44,
                "gflops": 0.001,
                "sha256": sha256(tmp_path / "tiny.onnx"),
                "metrics": {"camvid_val": {"miou": 0.5}},
                "training": {"epochs": 1, "wall_hours": 0.1, "trained_on": "nowhere"},
            }
        ],
    ).save()
    long = "tiny-with-a-name-longer-than-the-name-column"
    manifest = Manifest.load(tmp_path / "manifest.json")
    manifest.models.append({**manifest.models[0], "name": long})
    manifest.save()
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(tmp_path)}
    res = run_cli("models", env=env)
    assert res.returncode == 0
    assert "* tiny" in res.stdout and "50.0" in res.stdout
    assert f"{long} seg" in res.stdout  # a long name keeps a space before its task
    # without --model, run uses the manifest's default
    res = run_cli("run", clip, "--no-show", "--json", tmp_path / "f.jsonl", env=env)
    assert res.returncode == 0, res.stderr
    assert frame_lines(tmp_path / "f.jsonl")[0]["model"] == "tiny"


def test_loop_and_frames_limit(tiny_model, clip, tmp_path):
    js = tmp_path / "f.jsonl"
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--loop", "3", "--json", js)
    assert res.returncode == 0, res.stderr
    lines = frame_lines(js)
    assert [d["frame"] for d in lines] == list(range(120))  # 40 frames, 3 times, one numbering
    assert lines[45]["class_share"]["Tree"] == 1.0  # output 45 is the clip's frame 5 again: class 5
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--frames", "7", "--json", js)
    assert res.returncode == 0 and len(frame_lines(js)) == 7


def test_runtime_needs_no_pytorch(tiny_model, clip, tmp_path):
    """The README's run command installs only the runtime: `rtseg run` must work without torch."""
    hide = "import sys; sys.modules['torch'] = sys.modules['torchvision'] = None; from rtseg.cli import main; sys.exit(main(sys.argv[1:]))"
    out = tmp_path / "o.mp4"
    res = subprocess.run(
        [sys.executable, "-c", hide, "run", str(clip), "--model", str(tiny_model), "--no-show", "--quiet", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert count_frames(out) == count_frames(clip)
    res = subprocess.run([sys.executable, "-c", hide, "train", "--data", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.strip() == "rtseg: error: train needs torch: pip install 'rtseg[train]'"


@pytest.mark.parametrize("command", ["run", "eval", "train", "export", "import", "models", "bench", "profile"])
def test_every_help_has_examples_and_defaults(command):
    res = run_cli(command, "--help")
    assert res.returncode == 0, res.stderr
    examples = res.stdout.split("examples:")[1].strip().splitlines()
    assert len(examples) >= 2 and all(e.strip().startswith("rtseg ") for e in examples)
    if command not in ("import", "models"):
        assert "(default:" in res.stdout


@pytest.mark.parametrize("option", ["--queue-size", "--frames", "--loop", "--streams", "--threads"])
def test_counts_below_one_are_refused_at_once(clip, option):
    res = run_cli("run", clip, "--no-show", option, "-5", timeout=30)
    assert res.returncode == 2 and "must be at least 1" in res.stderr


@pytest.mark.parametrize(
    "args, said",
    [
        (["run", "x.mp4", "--target-fps", "0"], "--target-fps: must be positive"),
        (["frob"], "invalid choice: 'frob'"),
        (["eval", "--model", "m"], "--data"),
        (["run", "x.mp4", "--input-size", "99992x99992"], "at most 4096"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(args, said):
    res = run_cli(*args, timeout=30)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("rtseg: error: ") and said in lines[0], res.stderr


def test_an_unknown_model_name_suggests_the_nearest_in_one_short_line(clip):
    res = run_cli("run", clip, "--no-show", "--model", "mnv2-100-dlv3p-os16-288x384-vocint8", timeout=30)
    line = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 1 and "did you mean mnv2-100-dlv3p-os16-288x384-voc-int8" in line and len(line) < 400


def test_models_puts_held_out_figures_first_and_says_which_split_and_speed(tiny_model, tmp_path):
    """An older model's optimistic val figure (60) must not sit beside, or above, a held-out one (40) as if
    comparable; a measured profile shows as this machine's FPS; a two-stage recipe counts both stages."""
    import os

    from rtseg.backends.choice import resolve_backend
    from rtseg.core.manifest import Manifest
    from rtseg.core.modelinfo import sha256
    from rtseg.runtime.pipeline import inference_layout
    from rtseg.selection.profiling import Profile, ProfileCache, machine_key

    shutil.copy(tiny_model, tmp_path / "tiny.onnx")
    base = {"file": "tiny.onnx", "task": "seg", "input_size": [64, 80], "sha256": sha256(tmp_path / "tiny.onnx")}
    Manifest(
        tmp_path / "manifest.json",
        default="new",
        models=[
            {
                **base,
                "name": "old",
                "metrics": {"camvid_val": {"miou": 0.6}},
                "training": {"epochs": 9, "wall_hours": 0.1, "trained_on": "here"},
            },
            {
                **base,
                "name": "new",
                "metrics": {"camvid_holdout:0006R0": {"miou": 0.4}},
                "training": {
                    "epochs": 10,
                    "wall_hours": 0.5,
                    "trained_on": "here",
                    "val_split": "holdout:0006R0",
                    "initialized_from": {"run": {"epochs": 30, "wall_hours": 0.25}},
                },
            },
        ],
    ).save()
    env = {**os.environ, "RTSEG_ENGINES_DIR": str(tmp_path), "RTSEG_CACHE_DIR": str(tmp_path / "cache")}
    os.environ["RTSEG_CACHE_DIR"] = env["RTSEG_CACHE_DIR"]
    try:
        streams, threads = inference_layout(None, None, live=False)
        cache = ProfileCache(machine_key(resolve_backend("auto")[0], streams, threads))
        with cache.lock():
            cache.put(Profile("new", sha256(tmp_path / "tiny.onnx"), 500.0, 2.0, 3.0, 123.4, 5.0, 9.0, 50, "today"))
    finally:
        del os.environ["RTSEG_CACHE_DIR"]
    out = run_cli("models", env=env).stdout.splitlines()
    at = {key: next(i for i, line in enumerate(out) if key in line) for key in ("held out", "* new", "selected on CamVid val", "old")}
    assert at["held out"] < at["* new"] < at["selected on CamVid val"] < at["old"], out
    assert "40.0" in out[at["* new"]] and "123" in out[at["* new"]] and "30 + 10 epochs in two stages, 0.75 h" in out[at["* new"]]
    assert "60.0" in out[at["old"]] and "optimistic" in out[at["selected on CamVid val"]]
