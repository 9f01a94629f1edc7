"""Live streams that die, stall and come back (a loopback MJPEG camera): the run reconnects, reports every
gap, keeps one output, and ends truthfully when the camera is gone for good."""

import json
import re
import signal
import threading
import time
import urllib.request

import cv2

from helpers import CameraDown, CliRun, MjpegServer, NUM_CLASSES, class_frame, frame_lines


def saved(masks) -> int:
    """Frames the run has processed and written so far (--save-masks writes one PNG per frame as it goes)."""
    return len(list(masks.glob("*.png")))


def test_a_stream_that_dies_and_comes_back_is_reconnected(tiny_model, tmp_path):
    cam = MjpegServer().start()
    js, stats, masks = tmp_path / "f.jsonl", tmp_path / "s.json", tmp_path / "masks"
    with CliRun(
        "run",
        cam.url,
        "--model",
        tiny_model,
        "--no-show",
        "--json",
        js,
        "--stats",
        stats,
        "--output",
        tmp_path / "o.avi",
        "--save-masks",
        masks,
        "--reconnect",
        "3",
    ) as run:
        run.wait_for(lambda: saved(masks) >= 10, "10 frames processed before the outage")
        port = cam.port
        cam.stop()  # reconnect attempts come 0.5, 1.5 and 3.5 s into an outage
        down = CameraDown(port).start()
        try:
            run.wait_for(lambda: down.given_up >= 1, "a first reconnect attempt, refused")
        finally:
            down.stop()
        before = saved(masks)
        cam.port = port
        cam.start()  # back before the second attempt, a second after the first
        run.wait_for(lambda: saved(masks) >= before + 30, "30 frames processed after the camera came back")
        cam.stop()  # for good: the run gives up after its attempts
        code = run.finish(60)
    assert code == 4, run.stderr  # lost in the end, and said so
    assert "live source lost" in run.stderr.strip().splitlines()[-1]
    s = json.loads(stats.read_text())
    assert len(s["gaps"]) == 2 and not s["gaps"][0].get("lost") and s["gaps"][1]["lost"]
    # the first attempt was refused: back at the second (1.5 s into the outage), or the third (3.5 s) at worst
    assert 1.5 <= s["gaps"][0]["seconds"] < 6 and s["gaps"][0]["attempts"] in (2, 3) and s["source_lost"]
    lines = frame_lines(js)
    back = [d for d in lines if "reconnect" in d]
    assert len(back) == 1 and back[0]["reconnect"]["attempts"] == s["gaps"][0]["attempts"]
    assert s["frames_in"] == s["frames_out"] + s["dropped"] and len(lines) == s["frames_out"]
    assert "source gap: down" in run.stderr and "source LOST" in run.stderr
    assert saved(masks) == s["frames_out"]  # numbered across the gap: nothing overwritten


def test_reconnect_zero_ends_with_the_stream(tiny_model, tmp_path):
    cam = MjpegServer().start()
    stats, masks = tmp_path / "s.json", tmp_path / "masks"
    with CliRun("run", cam.url, "--model", tiny_model, "--no-show", "--reconnect", "0", "--stats", stats, "--save-masks", masks) as run:
        run.wait_for(lambda: saved(masks) >= 1, "a frame processed")  # the stream is open and read
        cam.stop()
        code = run.finish(60)
    assert code == 0, run.stderr
    s = json.loads(stats.read_text())
    assert s["frames_out"] >= 1 and s["gaps"] == [] and not s["source_lost"]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_ctrl_c_acts_at_once_on_a_stalled_stream(tiny_model, tmp_path):
    sent, hold = 40, threading.Event()

    def jpeg_for(i):
        if i >= sent:
            hold.wait(120)  # the connection stays open, no frame comes: frames 0..39 were all there is
        return cv2.imencode(".jpg", class_frame(i % NUM_CLASSES))[1].tobytes()

    cam = MjpegServer(jpeg_for=jpeg_for).start()
    try:
        with CliRun(
            "run",
            cam.url,
            "--model",
            tiny_model,
            "--no-show",
            "--reconnect",
            "forever",
            "--output",
            tmp_path / "o.avi",
            "--serve",
            "127.0.0.1:0",
        ) as run:
            url = run.wait_line("live view on ").split(" on ", 1)[1].split()[0]
            # every frame the camera sent has been read: the run now waits on a stream that sends nothing (its
            # stall watchdog would reconnect only after 5 s)
            run.wait_for(lambda: get_json(url + "stats.json").get("frames_in", 0) >= sent, f"the {sent} frames sent read by the run")
            code, took = ctrl_c(run)
    finally:
        hold.set()
        cam.stop()
    assert code == 130 and took < 3.0, f"exit {code} after {took:.1f} s:\n{run.stderr}"  # with teardown
    assert cv2.VideoCapture(str(tmp_path / "o.avi")).read()[0]  # the output is playable


def ctrl_c(run) -> tuple[int, float]:
    """Ctrl-C a running `rtseg`: its exit status and the seconds it took to end."""
    t0 = time.monotonic()
    run.send(signal.SIGINT)
    code = run.finish(30)
    return code, time.monotonic() - t0


def test_ctrl_c_during_the_back_off_acts_at_once(tiny_model, tmp_path):
    cam = MjpegServer().start()
    masks = tmp_path / "masks"
    with CliRun("run", cam.url, "--model", tiny_model, "--no-show", "--reconnect", "forever", "--save-masks", masks) as run:
        run.wait_for(lambda: saved(masks) >= 1, "a frame processed")
        port = cam.port
        cam.stop()  # gone: the run waits 0.5, 1 and 2 s before its attempts, then 4 s
        down = CameraDown(port).start()
        try:
            run.wait_for(lambda: down.given_up >= 3, "three reconnect attempts, refused")  # now in the 4 s wait
            code, took = ctrl_c(run)
        finally:
            down.stop()
    assert code == 130 and took < 3.0, f"exit {code} after {took:.1f} s:\n{run.stderr}"
    # the outage in progress is in the summary, cut short by the Ctrl-C after its three attempts
    assert re.search(r"source gap: down [\d.]+ s from [\d:]+, 3 reconnect attempt\(s\); interrupted", run.stderr), run.stderr
