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
    for option in (["--output", tmp_path / "o.mp4"], ["--save-masks", tmp_path / "m"], ["--json", tmp_path / "f.jsonl"]):
        assert "works with one source" in refused(*two, "--output-dir", out, *option)
    assert "give --output-dir" in refused(*two, "--serve", "0", "--json")  # JSON lines need a folder to go in
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


def get_json(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def served_url(proc) -> str:
    """The live view's address, from the run's own log line (it was asked for port 0: any free one)."""
    for line in proc.stderr:
        if "live view of every source on " in line:
            return line.split(" on ", 1)[1].split()[0]
    raise AssertionError("the run ended without serving")


def test_one_server_shows_every_source_with_its_own_numbers_and_picture(tiny_model, tmp_path):
    import urllib.request

    cams = [MjpegServer().start(), MjpegServer(fps=10).start()]
    (tmp_path / "cams.txt").write_text(f"# two cameras\nfront = {cams[0].url}\n\nback = {cams[1].url}\n")
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", "run", str(tmp_path / "cams.txt"), "--model", str(tiny_model),
                             "--serve", "127.0.0.1:0", "--no-show", "--reconnect", "forever"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = served_url(proc)
        deadline = time.time() + 30
        while time.time() < deadline:
            s = get_json(url + "stats.json")
            if min(v.get("frames_out") or 0 for v in s["sources"].values()) >= 10:
                break
            time.sleep(0.2)
        assert set(s["sources"]) == {"front", "back"} and s["source_count"] == 2
        assert s["frames_out"] == sum(v["frames_out"] for v in s["sources"].values())
        assert s["sources"]["front"]["source"] == cams[0].url and s["sources"]["back"]["state"] == "running"
        one = get_json(url + "back/stats.json")
        assert one["model"] == "nearest" and one["source"] == cams[1].url
        for label in ("front", "back"):
            jpeg = urllib.request.urlopen(f"{url}{label}/frame.jpg", timeout=5).read()
            assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
        assert 'src="/front/stream.mjpg"' in urllib.request.urlopen(url + "front/", timeout=5).read().decode()
        assert "/stats.json" in urllib.request.urlopen(url, timeout=5).read().decode()  # the grid
        try:
            urllib.request.urlopen(url + "nobody/frame.jpg", timeout=5)
            raise AssertionError("an unknown source must be a 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        for c in cams:
            c.stop()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "front (" in err and "back (" in err  # the summary names each source


def test_a_source_list_names_the_outputs_and_reads_paths_beside_itself(tiny_model, tmp_path):
    (tmp_path / "rec").mkdir()
    uniform_clip(tmp_path / "rec" / "a.avi", 4, 6)
    uniform_clip(tmp_path / "rec" / "b.avi", 6, 8)
    (tmp_path / "cams.toml").write_text('[[source]]\nuri = "rec/a.avi"\nlabel = "gate"\n\n[[source]]\nuri = "rec/b.avi"\n')
    out = tmp_path / "out"
    out.mkdir()
    res = run_cli("run", tmp_path / "cams.toml", "--model", tiny_model, "--output-dir", out, "--json", "--no-show",
                  cwd=str(out))  # paths in the list are the list's, not the working folder's
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b.jsonl", "b.mp4", "gate.jsonl", "gate.mp4"]
    assert classes_seen(out / "gate.jsonl") == [4] * 6 and classes_seen(out / "b.jsonl") == [6] * 8


def test_a_bad_source_list_is_one_line(tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cases = {"missing.txt": None, "empty.txt": "# nothing\n\n", "bad.toml": "[[source]\n", "nouri.toml": "[[source]]\nlabel = 'x'\n",
             "twice.txt": "a = x.mp4\na = y.mp4\n", "label.toml": "[[source]]\nuri = 'x.mp4'\nlabel = 'a b'\n",
             "key.toml": "[[source]]\nuri = 'x.mp4'\nfps = 3\n", "number.toml": "[[source]]\nuri = 'x.mp4'\nlabel = 3\n",
             "reserved.txt": "stats.json = x.mp4\n"}
    expect = {"missing.txt": "no such file", "empty.txt": "names no source", "bad.toml": "not valid TOML",
              "nouri.toml": "no uri", "twice.txt": "label(s) a given to more than one", "label.toml": "must be text",
              "key.toml": "unknown key(s) fps", "number.toml": "must be text", "reserved.txt": "and not"}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        assert expect[name] in refused(tmp_path / name, "--model", tiny_model, "--output-dir", out), name


def test_a_camera_down_at_start_joins_when_it_comes_up(tiny_model, monkeypatch):
    """`rtseg serve` starts its cameras tolerant: one that is down is tried again, the others run meanwhile."""
    import socket

    from rtseg.runtime import group as group_module
    from rtseg.runtime.group import GroupSettings, SourceGroup
    from rtseg.runtime.source_list import NamedSource

    monkeypatch.setattr(group_module, "REOPEN_S", 0.2)
    up = MjpegServer().start()
    with socket.socket() as s:  # a port nothing listens on, yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    late = MjpegServer(port=port)
    settings = GroupSettings(model=str(tiny_model), reconnect=None)
    group = SourceGroup(settings, [NamedSource(up.url, "up"), NamedSource(late.url, "late")], live_view=True, tolerant=True)
    try:
        group.load()
        group.start()
        feeds = group.feeds()
        deadline = time.time() + 20
        while (feeds["up"].stats().get("frames_out") or 0) < 5 and time.time() < deadline:
            time.sleep(0.05)
        assert feeds["late"].stats()["state"] == "connecting" and feeds["up"].stats()["state"] == "running"
        late.start()
        while (feeds["late"].stats().get("frames_out") or 0) < 5 and time.time() < deadline:
            time.sleep(0.05)
        assert feeds["late"].stats()["state"] == "running" and feeds["late"].stats()["frames_out"] >= 5
    finally:
        group.stop()
        group.wait(10)
        group.close()
        up.stop()
        late.stop()
    assert [lane.state for lane in group.lanes] == ["stopped", "stopped"]


def test_two_lists_cannot_give_one_label_twice(tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"front = {tmp_path / name}.mp4\n")
    assert "label(s) front given to more than one source" in refused(tmp_path / "a.txt", tmp_path / "b.txt", "--model",
                                                                      tiny_model, "--output-dir", out)


def test_a_password_in_a_camera_url_is_never_shown():
    from rtseg.core.redact import redact
    from rtseg.runtime.group import source_labels

    uri = "rtsp://admin:s3cret@10.0.0.5:554/stream1"
    assert redact(uri) == "rtsp://***@10.0.0.5:554/stream1" and redact("video.mp4") == "video.mp4"
    assert source_labels([uri]) == ["10.0.0.5_554_stream1"]


def test_stopping_while_a_camera_is_still_down_ends_its_retries(tiny_model, monkeypatch):
    import socket

    from rtseg.runtime import group as group_module
    from rtseg.runtime.group import GroupSettings, SourceGroup
    from rtseg.runtime.source_list import NamedSource

    monkeypatch.setattr(group_module, "REOPEN_S", 0.1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    group = SourceGroup(GroupSettings(model=str(tiny_model)), [NamedSource(f"http://127.0.0.1:{port}/cam.mjpg", "down")],
                        live_view=True, tolerant=True)
    group.load()
    group.start()
    time.sleep(0.5)  # a few failed retries
    group.stop()
    assert group.wait(10) and not group.running()
    group.close()
    assert group.lanes[0].state == "connecting" and group.lanes[0].pipeline is None
