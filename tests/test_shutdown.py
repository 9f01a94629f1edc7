"""Ctrl-C and SIGTERM: stop reading, drain the queues, leave a playable video and a complete summary."""

import json
import signal
import time

import pytest

from helpers import CliRun, complete_lines, count_frames, frame_lines, nearest_centre_onnx, write_clip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_leaves_a_playable_output(tmp_path, sig):
    model = nearest_centre_onnx(tmp_path / "m.onnx", dynamic=True)
    clip = write_clip(tmp_path / "long.avi", 3000)
    out, stats, js = tmp_path / "out.mp4", tmp_path / "stats.json", tmp_path / "f.jsonl"
    # a large input size slows the tiny model, and the clip played 10 times over is 30000 frames: minutes of
    # work, so the run is certainly still going when the signal comes
    with CliRun(
        "run",
        clip,
        "--model",
        model,
        "--no-show",
        "--input-size",
        "512x640",
        "--loop",
        "10",
        "--output",
        out,
        "--json",
        js,
        "--stats",
        stats,
        "--quiet",
    ) as run:
        run.wait_for(lambda: len(complete_lines(js)) >= 20, "20 frames written")
        run.send(sig)
        code = run.finish(60)
    err = run.stderr
    assert code == 128 + sig, err
    assert "Traceback" not in err
    s = json.loads(stats.read_text())
    assert s["interrupted"] and 20 <= s["frames_out"] < 30000
    assert s["frames_out"] == s["frames_in"]  # what was read was processed, nothing lost
    assert count_frames(out) == s["frames_out"]  # the mp4 is finalised and every frame is in it
    assert len(frame_lines(js)) == s["frames_out"]


def test_a_second_signal_stops_at_once_and_the_summary_counts_what_was_abandoned(tmp_path):
    model = nearest_centre_onnx(tmp_path / "m.onnx", dynamic=True)
    clip = write_clip(tmp_path / "long.avi", 3000)
    out, stats, js = tmp_path / "out.mp4", tmp_path / "stats.json", tmp_path / "f.jsonl"
    infer_s = 1.0  # every inference a second longer (a heavy model): draining 2 streams and a queue of 4 takes
    # seconds, and the second Ctrl-C certainly comes while frames are in flight
    with CliRun(
        "run",
        clip,
        "--model",
        model,
        "--no-show",
        "--output",
        out,
        "--json",
        js,
        "--stats",
        stats,
        "--streams",
        "2",
        "--queue-size",
        "4",
        infer_delay_s=infer_s,
        say=True,
    ) as run:
        run.wait_line("rtseg-test: inferred", count=2)  # frames come out, and the queues behind them are full
        run.send(signal.SIGINT)
        run.wait_line("rtseg-test: stopping")  # the first Ctrl-C was acted on: the run is draining
        second = time.monotonic()
        run.send(signal.SIGINT)
        code = run.finish(60)
    err = run.stderr
    assert code == 130 and "Traceback" not in err, err
    s = json.loads(stats.read_text())
    # the frames in flight were abandoned, not drained, and every frame read is accounted for
    assert s["interrupted"] and s["abandoned"] > 0 and f"abandoned in flight {s['abandoned']}" in err, err
    assert s["frames_in"] == s["frames_out"] + s["abandoned"]
    assert count_frames(out) == s["frames_out"] == len(frame_lines(js))
    # at once: the inferences under way finish (a second), the frames queued behind them are not waited for
    # (draining 4 of them on 2 streams would take 2 s more)
    took = run.line_time("abandoned in flight") - second
    assert took < infer_s + 1.5, f"the summary came {took:.1f} s after the second Ctrl-C"
