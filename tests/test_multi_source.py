"""`rtseg run SRC1 SRC2 ... --output-dir DIR`: one pipeline per source, one model, outputs kept apart."""

import contextlib
import io
import json
import os
import signal

import cv2
import numpy as np

from helpers import CameraDown, CliRun, MjpegServer, class_frame, complete_lines, count_frames, frame_lines, run_cli, wait_for

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
    return [int(np.argmax(list(d["class_share"].values()))) for d in frame_lines(jsonl)]


def test_each_source_gets_exactly_its_own_frames(tiny_model, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    a = uniform_clip(tmp_path / "x" / "clip.avi", 2, 12)
    b = uniform_clip(tmp_path / "y" / "clip.avi", 5, 9)  # same stem: labels widen to the folder
    c = uniform_clip(tmp_path / "road.avi", 7, 15)
    res = run_cli("run", a, b, c, "--model", tiny_model, "--output-dir", out, "--json", "--no-show", timeout=60)
    assert res.returncode == 0, res.stderr
    for label, k, n in (("x__clip_avi", 2, 12), ("y__clip_avi", 5, 9), ("road", 7, 15)):
        assert count_frames(out / f"{label}.mp4") == n
        assert classes_seen(out / f"{label}.jsonl") == [k] * n  # no frame of another source
    assert "all 3 sources: frames in 36, out 36" in res.stderr


def served_at(run) -> str:
    """The live view's address, from the run's own log line (it was asked for port 0: any free one)."""
    return run.wait_line("live view of every source on ").split(" on ", 1)[1].split()[0]


def sources_when(url: str, cond):
    """The per-source numbers of stats.json when `cond(sources)` holds, else None (for wait_for)."""
    sources = get_json(url + "stats.json")["sources"]
    return sources if cond(sources) else None


def test_a_camera_lost_mid_run_stalls_no_other_source(tiny_model, tmp_path):
    cam = MjpegServer().start()
    out = tmp_path / "out"
    out.mkdir()
    n = 600
    clip = uniform_clip(tmp_path / "long.avi", 3, n)
    label = f"127.0.0.1_{cam.port}_cam"
    # every inference 10 ms longer: the file takes 6 s at least, and outlasts the camera (lost within a second
    # or two of its first frames) whatever the machine's load
    with CliRun(
        "run",
        cam.url,
        clip,
        "--model",
        tiny_model,
        "--output-dir",
        out,
        "--json",
        "--no-show",
        "--reconnect",
        "1",
        "--serve",
        "127.0.0.1:0",
        infer_delay_s=0.01,
    ) as run:
        url = served_at(run)
        run.wait_for(lambda: complete_lines(out / f"{label}.jsonl"), "the camera's first frames written")
        cam.stop()
        sources = run.wait_for(lambda: sources_when(url, lambda s: s.get(label, {}).get("state") == "lost"), "the camera lost")
        # the file was going on when the camera was lost ...
        assert sources["long"]["state"] == "running" and sources["long"]["frames_out"] < n, sources
        code = run.finish(60)
    err = run.stderr
    assert code == 4, err  # the camera was lost; the file ended as announced
    assert count_frames(out / "long.mp4") == n and classes_seen(out / "long.jsonl") == [3] * n  # ... to its end
    cam_lines = frame_lines(out / f"{label}.jsonl")
    assert cam_lines and count_frames(out / f"{label}.mp4") == len(cam_lines)
    # the file went on being written after the camera's last frame
    last = [frame_lines(f)[-1]["wall_time"] for f in (out / f"{label}.jsonl", out / "long.jsonl")]
    assert last[1] > last[0]
    assert "live source lost" in err and "Traceback" not in err


def test_one_ctrl_c_stops_every_source_and_finishes_every_output(tiny_model, tmp_path):
    cams = [MjpegServer().start(), MjpegServer().start()]
    out = tmp_path / "out"
    out.mkdir()
    try:
        with CliRun(
            "run", *(c.url for c in cams), "--model", tiny_model, "--output-dir", out, "--json", "--no-show", "--reconnect", "forever"
        ) as run:
            for c in cams:  # each camera's frames are being written: the run is under way for both
                run.wait_for(lambda c=c: complete_lines(out / f"127.0.0.1_{c.port}_cam.jsonl"), f"frames of {c.url} written")
            run.send(signal.SIGINT)
            code = run.finish(30)  # cameras that never end: only the Ctrl-C ends the run
    finally:
        for c in cams:
            c.stop()
    err = run.stderr
    assert code == 130, err
    for c in cams:  # each overlay closed (readable to its last frame) and matching its JSON lines
        label = f"127.0.0.1_{c.port}_cam"
        lines = frame_lines(out / f"{label}.jsonl")
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


def test_one_server_shows_every_source_with_its_own_numbers_and_picture(tiny_model, tmp_path):
    import urllib.request

    cams = [MjpegServer().start(), MjpegServer(fps=10).start()]
    (tmp_path / "cams.txt").write_text(f"# two cameras\nfront = {cams[0].url}\n\nback = {cams[1].url}\n")
    try:
        with CliRun(
            "run", tmp_path / "cams.txt", "--model", tiny_model, "--serve", "127.0.0.1:0", "--no-show", "--reconnect", "forever"
        ) as run:
            url = served_at(run)
            ten_each = lambda s: min((v.get("frames_out") or 0 for v in s.values()), default=0) >= 10  # noqa: E731
            run.wait_for(lambda: sources_when(url, ten_each), "10 frames out of each camera")
            s = get_json(url + "stats.json")
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
            run.send(signal.SIGINT)
            code = run.finish(30)
    finally:
        for c in cams:
            c.stop()
    err = run.stderr
    assert code == 130 and "Traceback" not in err, err
    assert "front (" in err and "back (" in err  # the summary names each source


def test_a_source_list_names_the_outputs_and_reads_paths_beside_itself(tiny_model, tmp_path):
    (tmp_path / "rec").mkdir()
    uniform_clip(tmp_path / "rec" / "a.avi", 4, 6)
    uniform_clip(tmp_path / "rec" / "b.avi", 6, 8)
    (tmp_path / "cams.toml").write_text('[[source]]\nuri = "rec/a.avi"\nlabel = "gate"\n\n[[source]]\nuri = "rec/b.avi"\n')
    out = tmp_path / "out"
    out.mkdir()
    res = run_cli(
        "run", tmp_path / "cams.toml", "--model", tiny_model, "--output-dir", out, "--json", "--no-show", cwd=str(out)
    )  # paths in the list are the list's, not the working folder's
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b.jsonl", "b.mp4", "gate.jsonl", "gate.mp4"]
    assert classes_seen(out / "gate.jsonl") == [4] * 6 and classes_seen(out / "b.jsonl") == [6] * 8


def test_a_bad_source_list_is_one_line(tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cases = {
        "missing.txt": None,
        "empty.txt": "# nothing\n\n",
        "bad.toml": "[[source]\n",
        "nouri.toml": "[[source]]\nlabel = 'x'\n",
        "twice.txt": "a = x.mp4\na = y.mp4\n",
        "label.toml": "[[source]]\nuri = 'x.mp4'\nlabel = 'a b'\n",
        "key.toml": "[[source]]\nuri = 'x.mp4'\nfps = 3\n",
        "number.toml": "[[source]]\nuri = 'x.mp4'\nlabel = 3\n",
        "reserved.txt": "stats.json = x.mp4\n",
    }
    expect = {
        "missing.txt": "no such file",
        "empty.txt": "names no source",
        "bad.toml": "not valid TOML",
        "nouri.toml": "no uri",
        "twice.txt": "label(s) a given to more than one",
        "label.toml": "must be text",
        "key.toml": "unknown key(s) fps",
        "number.toml": "must be text",
        "reserved.txt": "and not",
    }
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        assert expect[name] in refused(tmp_path / name, "--model", tiny_model, "--output-dir", out), name


def test_a_camera_down_at_start_joins_when_it_comes_up(tiny_model, monkeypatch):
    """`rtseg serve` starts its cameras tolerant: one that is down is tried again, the others run meanwhile."""
    import socket

    from rtseg.runtime import group as group_module
    from rtseg.runtime.group import SourceGroup
    from rtseg.runtime.settings import ModelChoice, RunSettings
    from rtseg.runtime.source_list import NamedSource

    monkeypatch.setattr(group_module, "REOPEN_S", 0.2)
    up = MjpegServer().start()
    with socket.socket() as s:  # a port nothing listens on, yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    late = MjpegServer(port=port)
    settings = RunSettings(choice=ModelChoice(str(tiny_model)), reconnect=None)
    group = SourceGroup(settings, [NamedSource(up.url, "up"), NamedSource(late.url, "late")], live_view=True, tolerant=True)
    try:
        group.load()
        group.start()
        feeds = group.feeds()
        wait_for(lambda: (feeds["up"].stats().get("frames_out") or 0) >= 5, "5 frames out of the camera that is up")
        assert feeds["late"].stats()["state"] == "connecting" and feeds["up"].stats()["state"] == "running"
        late.start()
        wait_for(lambda: (feeds["late"].stats().get("frames_out") or 0) >= 5, "5 frames out of the late camera")
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
    assert "label(s) front given to more than one source" in refused(
        tmp_path / "a.txt", tmp_path / "b.txt", "--model", tiny_model, "--output-dir", out
    )


def test_a_password_in_a_camera_url_is_never_shown():
    from rtseg.core.redact import redact
    from rtseg.runtime.group import source_labels

    uri = "rtsp://admin:s3cret@10.0.0.5:554/stream1"
    assert redact(uri) == "rtsp://***@10.0.0.5:554/stream1" and redact("video.mp4") == "video.mp4"
    assert source_labels([uri]) == ["10.0.0.5_554_stream1"]


def test_stopping_while_a_camera_is_still_down_ends_its_retries(tiny_model, monkeypatch):
    import socket

    from rtseg.runtime import group as group_module
    from rtseg.runtime.group import SourceGroup
    from rtseg.runtime.settings import ModelChoice, RunSettings
    from rtseg.runtime.source_list import NamedSource

    monkeypatch.setattr(group_module, "REOPEN_S", 0.1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = CameraDown(port).start()  # answers every attempt "503": each retry is seen
    try:
        group = SourceGroup(
            RunSettings(choice=ModelChoice(str(tiny_model))),
            [NamedSource(f"http://127.0.0.1:{port}/cam.mjpg", "down")],
            live_view=True,
            tolerant=True,
        )
        group.load()
        group.start()
        wait_for(lambda: down.given_up >= 3, "the first attempt and two failed retries")
        group.stop()
        assert group.wait(10) and not group.running()
        group.close()
    finally:
        down.stop()
    assert group.lanes[0].state == "connecting" and group.lanes[0].pipeline is None
