"""`rtseg run SRC1 SRC2 ... --output-dir DIR`: one pipeline per source, one model, outputs kept apart."""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np

from helpers import MjpegServer, class_frame, count_frames, run_cli

from rtseg.cli import main


def uniform_clip(path, k: int, n: int):
    """A clip whose every frame the tiny model labels class k."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for _ in range(n):
        writer.write(class_frame(k))
    writer.release()
    return path


def classes_seen(jsonl) -> list[int]:
    """The dominant class of every JSON line, in order."""
    return [int(np.argmax(list(json.loads(x)["class_share"].values()))) for x in jsonl.read_text().splitlines()]


def test_each_source_gets_exactly_its_own_frames(tiny_model, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    a = uniform_clip(tmp_path / "x" / "clip.avi", 2, 12)
    b = uniform_clip(tmp_path / "y" / "clip.avi", 5, 9)   # same stem: labels widen to the folder
    c = uniform_clip(tmp_path / "road.avi", 7, 15)
    res = run_cli("run", a, b, c, "--model", tiny_model, "--output-dir", out, "--json", "--no-show", timeout=60)
    assert res.returncode == 0, res.stderr
    for label, k, n in (("x__clip_avi", 2, 12), ("y__clip_avi", 5, 9), ("road", 7, 15)):
        assert count_frames(out / f"{label}.mp4") == n
        assert classes_seen(out / f"{label}.jsonl") == [k] * n  # no frame of another source
    assert "all 3 sources: frames in 36, out 36" in res.stderr


def test_a_camera_lost_mid_run_stalls_no_other_source(tiny_model, tmp_path):
    cam = MjpegServer().start()
    out = tmp_path / "out"
    out.mkdir()
    clip = uniform_clip(tmp_path / "long.avi", 3, 3000)  # outlasts the camera
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "run", cam.url, str(clip), "--model", str(tiny_model),
                             "--output-dir", str(out), "--json", "--no-show", "--reconnect", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while cam.sent < 10 and proc.poll() is None:  # the run is reading the camera
        time.sleep(0.02)
    cam.stop()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err  # the camera was lost; the file ended as announced
    assert count_frames(out / "long.mp4") == 3000 and classes_seen(out / "long.jsonl") == [3] * 3000
    label = f"127.0.0.1_{cam.port}_cam"
    cam_lines = (out / f"{label}.jsonl").read_text().splitlines()
    assert cam_lines and count_frames(out / f"{label}.mp4") == len(cam_lines)
    # the file went on being written after the camera's last frame
    last = [json.loads(f.read_text().splitlines()[-1])["wall_time"] for f in (out / f"{label}.jsonl", out / "long.jsonl")]
    assert last[1] > last[0]
    assert "live source lost" in err and "Traceback" not in err


def test_one_ctrl_c_stops_every_source_and_finishes_every_output(tiny_model, tmp_path):
    cams = [MjpegServer().start(), MjpegServer().start()]
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "run", *(c.url for c in cams), "--model", str(tiny_model),
                             "--output-dir", str(out), "--json", "--no-show", "--reconnect", "forever"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while min(c.sent for c in cams) < 15 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    for c in cams:
        c.stop()
    assert proc.returncode == 130, err
    for c in cams:  # each overlay closed (readable to its last frame) and matching its JSON lines
        label = f"127.0.0.1_{c.port}_cam"
        lines = (out / f"{label}.jsonl").read_text().splitlines()
        assert lines and count_frames(out / f"{label}.mp4") == len(lines)
    assert "Traceback" not in err


def refused(*args) -> str:
    """`rtseg run ...` in this process: it must fail with exit 1 and one line, before any work."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", *map(str, args)])
    lines = err.getvalue().strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("rtseg: error:"), (args, code, err.getvalue())
    return lines[0]


def test_what_cannot_work_is_refused_in_one_line_before_any_work(tiny_model, clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    other = uniform_clip(tmp_path / "other.avi", 1, 3)
    two = [clip, other, "--model", tiny_model, "--no-show"]
    assert "--output-dir" in refused(*two)
    for option in (["--output", tmp_path / "o.mp4"], ["--save-masks", tmp_path / "m"], ["--json", tmp_path / "f.jsonl"],
                   ["--serve", "0"]):
        assert "works with one source" in refused(*two, "--output-dir", out, *option)
    assert "future work" in refused(*two, "--output-dir", out, "--target-fps", "30")
    assert "no such folder" in refused(*two, "--output-dir", tmp_path / "missing")
    assert "not a folder" in refused(*two, "--output-dir", other)
    assert "holds input other.avi" in refused(*two, "--output-dir", tmp_path)
    assert "nope.mp4" in refused(clip, tmp_path / "nope.mp4", "--model", tiny_model, "--output-dir", out)
    assert "--json FILE" in refused(clip, "--model", tiny_model, "--json")  # one source, no folder: which file?
    assert list(out.iterdir()) == []  # nothing was written by any of them


def test_an_unwritable_output_dir_is_refused(tiny_model, clip, tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    access = os.access  # as if not writable: the tests may run as root, who can write anywhere
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if p == out and mode == os.W_OK else access(p, mode, **kw))
    assert "not writable" in refused(clip, clip, "--model", tiny_model, "--output-dir", out)
