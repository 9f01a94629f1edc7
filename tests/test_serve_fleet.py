"""`rtseg serve --streams FILE`: many live cameras behind one server, in this process or over Ray camera
workers; a worker killed mid-run comes back with its cameras. The Ray tests need Ray (pip install 'rtseg[ray]')."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import MjpegServer, default_sigint

from rtseg.cli import main
from rtseg.fleet.serve import deal
from rtseg.runtime.source_list import NamedSource


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def serving(tiny_model, tmp_path, cams, *args):
    """`rtseg serve` over the cameras, in a subprocess; yields (process, base URL) once it serves."""
    streams = tmp_path / "cams.txt"
    streams.write_text("".join(f"c{i} = {c.url}\n" for i, c in enumerate(cams)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtseg", "serve", "--streams", str(streams), "--model", str(tiny_model), "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        line = first_line(proc, "rtseg: serving ", 120)
        yield proc, line.strip().rsplit(" on ", 1)[1]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.log = "".join(proc.lines) + proc.communicate(timeout=60)[1]
        for c in cams:
            c.stop()


def first_line(proc, marker: str, seconds: float) -> str:
    """The first stderr line holding `marker`, read by a thread so that a silent process fails the test in
    `seconds` instead of hanging it; the lines read are kept in proc.lines."""
    import queue
    import threading

    lines, proc.lines = queue.Queue(), []

    def read():
        for line in iter(proc.stderr.readline, ""):
            lines.put(line)
            if marker in line:
                return
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.time()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError("serve ended before serving:\n" + "".join(proc.lines))
        proc.lines.append(line)
        if marker in line:
            return line
    raise AssertionError(f"serve did not start serving within {seconds} s:\n" + "".join(proc.lines))


def until(check, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_cameras_are_dealt_out_round_robin():
    sources = [NamedSource(f"u{i}", f"c{i}") for i in range(5)]
    assert [[s.label for s in g] for g in deal(sources, 2)] == [["c0", "c2", "c4"], ["c1", "c3"]]
    assert len(deal(sources, 9)) == 5  # never an empty worker


def test_serve_in_one_process_shows_every_camera_and_stops_after_its_duration(tiny_model, tmp_path):
    cams = [MjpegServer().start(), MjpegServer().start()]
    with serving(tiny_model, tmp_path, cams, "--no-ray", "--duration", "15", "--stats", tmp_path / "s.json") as (proc, url):
        stats = until(
            lambda: (s := get_json(url + "stats.json")) and min(v.get("frames_out") or 0 for v in s["sources"].values()) >= 10 and s,
            20,
            "both cameras running",
        )
        assert list(stats["sources"]) == ["c0", "c1"] and stats["sources"]["c1"]["source"] == cams[1].url
        assert urllib.request.urlopen(url + "c1/frame.jpg", timeout=10).headers["Content-Type"] == "image/jpeg"
        proc.wait(60)
    assert proc.returncode == 0, proc.log
    assert "c0 (" in proc.log and "all 2 sources" in proc.log and "Traceback" not in proc.log
    final = json.loads((tmp_path / "s.json").read_text())  # taken once the cameras had stopped and drained
    assert {v["state"] for v in final["sources"].values()} == {"stopped"}
    assert final["frames_out"] == sum(v["frames_out"] for v in final["sources"].values()) > 20


def refused(*args) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["serve", *map(str, args)])
    lines = err.getvalue().strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("rtseg: error:"), (args, code, err.getvalue())
    return lines[0]


def test_what_cannot_work_is_refused_in_one_line(tiny_model, tmp_path):
    (tmp_path / "one.txt").write_text("http://127.0.0.1:9/cam.mjpg\n")
    assert "no such file" in refused("--streams", tmp_path / "none.txt", "--model", tiny_model, "--no-ray")
    assert "no --ray-address or --workers" in refused("--streams", tmp_path / "one.txt", "--no-ray", "--workers", "2")
    with socket_in_use() as port:
        from importlib.util import find_spec

        for where in ("--no-ray",) + (("--workers=1",) if find_spec("ray") else ()):  # on Ray: before any worker
            assert "--listen 127.0.0.1:" in refused(
                "--streams", tmp_path / "one.txt", "--model", tiny_model, where, "--backend", "onnxruntime", "--listen", f"127.0.0.1:{port}"
            )


@contextlib.contextmanager
def socket_in_use():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_killed_camera_worker_comes_back_with_its_cameras(tiny_model, tmp_path):
    pytest.importorskip("ray")
    cams = [MjpegServer().start(), MjpegServer().start()]
    with serving(tiny_model, tmp_path, cams, "--workers", "2") as (proc, url):

        def running(s):
            return all(v.get("state") == "running" and (v.get("frames_out") or 0) >= 10 for v in s["sources"].values())

        before = until(lambda: (s := get_json(url + "stats.json")) and running(s) and s, 60, "both cameras running")
        pids = {label: v["worker"]["pid"] for label, v in before["sources"].items()}
        assert len(set(pids.values())) == 2  # one worker each
        os.kill(pids["c0"], signal.SIGKILL)
        after = until(
            lambda: (
                (s := get_json(url + "stats.json"))
                and s["sources"]["c0"]["restarts"] == 1
                and running(s)
                and s["sources"]["c0"]["frames_out"] > before["sources"]["c0"]["frames_out"] + 10
                and s
            ),
            90,
            "c0 back on a new worker",
        )
        c0, c1 = after["sources"]["c0"], after["sources"]["c1"]
        assert c0["worker"]["pid"] != pids["c0"] and c1["worker"]["pid"] == pids["c1"] and c1["restarts"] == 0
        assert c1["frames_out"] > before["sources"]["c1"]["frames_out"]  # the other camera went on meanwhile
        assert urllib.request.urlopen(url + "c0/frame.jpg", timeout=10).headers["Content-Type"] == "image/jpeg"
    assert proc.returncode == 130, proc.log
    assert "c0 (" in proc.log and "1 restart(s)" in proc.log and "Traceback" not in proc.log
