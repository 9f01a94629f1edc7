"""Ctrl-C and SIGTERM: stop reading, drain the queues, leave a playable video and a complete summary."""
import json
import signal
import subprocess
import sys
import time

import pytest

from helpers import count_frames, nearest_centre_onnx, write_clip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_leaves_a_playable_output(tmp_path, sig):
    model = nearest_centre_onnx(tmp_path / "m.onnx", dynamic=True)
    clip = write_clip(tmp_path / "long.avi", 3000)
    out, stats, js = tmp_path / "out.mp4", tmp_path / "stats.json", tmp_path / "f.jsonl"
    # a large input size slows the tiny model so the run is still going when the signal comes
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "run", str(clip), "--model", str(model), "--no-show",
                             "--input-size", "512x640", "--output", str(out), "--json", str(js), "--stats", str(stats),
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not js.exists() or len(js.read_text().splitlines()) < 20):
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    s = json.loads(stats.read_text())
    assert s["interrupted"] and 20 <= s["frames_out"] < 3000
    assert s["frames_out"] == s["frames_in"]          # what was read was processed, nothing lost
    assert count_frames(out) == s["frames_out"]       # the mp4 is finalised and every frame is in it
    assert len(js.read_text().splitlines()) == s["frames_out"]


def test_a_second_signal_stops_at_once_and_the_summary_counts_what_was_abandoned(tmp_path):
    model = nearest_centre_onnx(tmp_path / "m.onnx", dynamic=True)
    clip = write_clip(tmp_path / "long.avi", 3000)
    out, stats, js = tmp_path / "out.mp4", tmp_path / "stats.json", tmp_path / "f.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "run", str(clip), "--model", str(model), "--no-show",
                             "--input-size", "512x640", "--output", str(out), "--json", str(js), "--stats", str(stats),
                             "--streams", "2", "--queue-size", "4"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not js.exists() or len(js.read_text().splitlines()) < 20):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    s = json.loads(stats.read_text())
    # every frame read is accounted for: written, or abandoned in flight and said so
    assert s["frames_in"] == s["frames_out"] + s["abandoned"]
    assert count_frames(out) == s["frames_out"] == len(js.read_text().splitlines())
    if s["abandoned"]:
        assert f"abandoned in flight {s['abandoned']}" in err
