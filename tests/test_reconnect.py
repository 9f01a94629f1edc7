"""Live streams that die, stall and come back (a loopback MJPEG camera): the run reconnects, reports every
gap, keeps one output, and ends truthfully when the camera is gone for good."""
import json
import signal
import subprocess
import sys
import threading
import time

from helpers import MjpegServer, run_cli


def rtseg_popen(*args):
    return subprocess.Popen([sys.executable, "-m", "rtseg", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_stream_that_dies_and_comes_back_is_reconnected(tiny_model, tmp_path):
    cam = MjpegServer().start()
    js, stats = tmp_path / "f.jsonl", tmp_path / "s.json"

    def outage():  # reconnect attempts come 0.5, 1.5 and 3.5 s into an outage
        while cam.sent < 20:  # the run has started reading (a cold start on a loaded machine takes a while)
            time.sleep(0.05)
        time.sleep(0.5)
        port = cam.port
        cam.stop()
        time.sleep(1.0)  # back before the second attempt
        cam.port = port
        cam.start()
        time.sleep(3.0)
        cam.stop()  # for good: the run gives up after its attempts

    threading.Thread(target=outage, daemon=True).start()
    masks = tmp_path / "masks"
    res = run_cli("run", cam.url, "--model", tiny_model, "--no-show", "--json", js, "--stats", stats,
                  "--output", tmp_path / "o.avi", "--save-masks", masks, "--reconnect", "3", timeout=120)
    assert res.returncode == 4, res.stderr  # lost in the end, and said so
    assert "live source lost" in res.stderr.strip().splitlines()[-1]
    s = json.loads(stats.read_text())
    assert len(s["gaps"]) == 2 and not s["gaps"][0].get("lost") and s["gaps"][1]["lost"]
    assert 1.0 < s["gaps"][0]["seconds"] < 6 and s["source_lost"]
    lines = [json.loads(x) for x in js.read_text().splitlines()]
    back = [d for d in lines if "reconnect" in d]
    assert len(back) == 1 and back[0]["reconnect"]["attempts"] >= 1
    assert s["frames_in"] == s["frames_out"] + s["dropped"] and len(lines) == s["frames_out"]
    assert "source gap: down" in res.stderr and "source LOST" in res.stderr
    assert len(list(masks.glob("*.png"))) == s["frames_out"]  # numbered across the gap: nothing overwritten


def test_reconnect_zero_ends_with_the_stream(tiny_model, tmp_path):
    cam = MjpegServer().start()
    threading.Timer(1.0, cam.stop).start()
    res = run_cli("run", cam.url, "--model", tiny_model, "--no-show", "--reconnect", "0", timeout=60)
    assert res.returncode == 0, res.stderr


def test_ctrl_c_acts_at_once_on_a_stalled_stream(tiny_model, tmp_path):
    cam = MjpegServer().start()
    proc = rtseg_popen("run", cam.url, "--model", tiny_model, "--no-show", "--reconnect", "forever",
                       "--output", tmp_path / "o.avi")
    while cam.sent < 30:
        time.sleep(0.05)
    cam.stall = True  # the connection stays open, no frame comes
    time.sleep(1.0)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    took = time.perf_counter() - t0
    cam.stop()
    assert proc.returncode == 130 and took < 3.0, f"exit {proc.returncode} after {took:.1f} s"  # with teardown
    import cv2

    assert cv2.VideoCapture(str(tmp_path / "o.avi")).read()[0]  # the output is playable


def test_ctrl_c_during_the_back_off_acts_at_once(tiny_model):
    cam = MjpegServer().start()
    proc = rtseg_popen("run", cam.url, "--model", tiny_model, "--no-show", "--reconnect", "forever")
    while cam.sent < 30:
        time.sleep(0.05)
    cam.stop()  # gone: the run waits between attempts
    time.sleep(2.0)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.perf_counter() - t0 < 3.0
    assert "interrupted" in err  # the outage in progress is in the summary
