"""`rtseg batch`: every video once, complete, under a name of its own; resumable; a worker killed mid-video
loses nothing. The one-process tests always run; the Ray tests need Ray (pip install 'rtseg[ray]')."""

import contextlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import CliRun, count_frames, frame_lines, run_cli, wait_for, write_clip

from rtseg.cli import main
from rtseg.fleet import BatchReport, BatchRequest, run_batch
from rtseg.fleet.commit import PARTIAL
from rtseg.fleet.video import Progress, Retry


LONG_FRAMES = 1500


def clip_at(path: Path, n: int, size=(48, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_clip(path, n, size)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """Seconds of work on one core: time to stop a batch, or kill a worker, midway through it."""
    return write_clip(tmp_path_factory.mktemp("long") / "long.avi", LONG_FRAMES, (240, 320))


@pytest.fixture
def videos(tmp_path):
    """Three clips, two of them named alike in different folders; keyed by the names their outputs get."""
    return {
        "a__clip_avi": clip_at(tmp_path / "a" / "clip.avi", 12),
        "b__clip_avi": clip_at(tmp_path / "b" / "clip.avi", 9),
        "other": clip_at(tmp_path / "a" / "other.avi", 7),
    }


@contextlib.contextmanager
def logger_kept(name: str):
    """The logger as it was, after `main` has set it up for a command (its handler, level, propagation)."""
    logger = logging.getLogger(name)
    kept = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = kept[0], kept[2]
        logger.setLevel(kept[1])


def batch(videos, tiny_model, out, **kw) -> BatchReport:
    kw = {"no_ray": True, "quiet": True, **kw}
    return run_batch(BatchRequest(tuple(str(v) for v in videos), str(out), model=str(tiny_model), **kw))


def committed(out: Path) -> set[str]:
    """Everything in the batch folder, the staging area included (it must be gone when a batch ends)."""
    return {p.name for p in out.iterdir()}


def assert_complete(out: Path, key: str, video: Path, json_lines=False, masks=False) -> None:
    n = count_frames(video)
    assert count_frames(out / f"{key}.mp4") == n  # every input frame, one output frame
    record = json.loads((out / f"{key}.done.json").read_text())
    assert record["frames_in"] == record["frames_out"] == n and record["input"] == str(video.resolve())
    if json_lines:
        assert len(frame_lines(out / f"{key}.jsonl")) == n
    if masks:
        assert len(list((out / f"{key}.masks").glob("*.png"))) == n


# -- in one process (always) -------------------------------------------------------------------------
def test_every_video_is_written_once_complete_under_a_name_of_its_own(videos, tiny_model, tmp_path):
    out = tmp_path / "out"
    res = run_cli(
        "batch", tmp_path / "a" / "*.avi", videos["b__clip_avi"], "--out", out, "--model", tiny_model, "--no-ray", "--json", "--save-masks"
    )
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line.split()[3] for line in res.stdout.splitlines()[1 : len(videos) + 1]}
    assert rows == {key: "done" for key in videos}  # the summary table: a row per video, and how it ended
    for key, video in videos.items():
        assert_complete(out, key, video, json_lines=True, masks=True)
    assert committed(out) == {f"{k}{s}" for k in videos for s in (".mp4", ".jsonl", ".masks", ".done.json")}
    assert "3 done, 0 skipped, 0 failed" in res.stdout


def test_a_rerun_skips_what_is_done_and_redoes_what_is_missing_or_changed(videos, tiny_model, tmp_path):
    out = tmp_path / "out"
    assert [v.status for v in batch(videos.values(), tiny_model, out, json_lines=True).videos] == ["done"] * 3
    made = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert [v.status for v in batch(videos.values(), tiny_model, out, json_lines=True).videos] == ["skipped"] * 3
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == made  # nothing rewritten

    (out / "a__clip_avi.jsonl").unlink()  # an output lost
    write_clip(videos["other"], 5)  # an input replaced
    report = batch(videos.values(), tiny_model, out, json_lines=True)
    assert {v.key: v.status for v in report.videos} == {"a__clip_avi": "done", "b__clip_avi": "skipped", "other": "done"}
    assert_complete(out, "a__clip_avi", videos["a__clip_avi"], json_lines=True)
    assert_complete(out, "other", videos["other"], json_lines=True)

    # other options make other outputs: nothing done with --json vouches for a run without it, nor stays beside it
    assert {v.status for v in batch(videos.values(), tiny_model, out).videos} == {"done"}
    assert committed(out) == {f"{k}{s}" for k in videos for s in (".mp4", ".done.json")}


def test_a_glob_over_the_tree_that_holds_the_batch_folder_leaves_the_outputs_out(videos, tiny_model, tmp_path):
    out = tmp_path / "a" / "segmented"
    first = batch([tmp_path / "a" / "**"], tiny_model, out, json_lines=True, save_masks=True)
    again = batch([tmp_path / "a" / "**"], tiny_model, out, json_lines=True, save_masks=True)
    assert [(v.key, v.status) for v in first.videos] == [("clip", "done"), ("other", "done")]
    assert [(v.key, v.status) for v in again.videos] == [("clip", "skipped"), ("other", "skipped")]


def test_what_a_killed_run_left_is_never_taken_for_done(videos, tiny_model, tmp_path):
    out = tmp_path / "out"
    batch(videos.values(), tiny_model, out)
    # killed mid-video: a staging folder with half a video; killed between renames: an output but no record
    (out / PARTIAL / "other" / "1-dead").mkdir(parents=True)
    (out / PARTIAL / "other" / "1-dead" / "other.mp4").write_bytes(b"half a video")
    (out / "other.done.json").unlink()
    report = batch(videos.values(), tiny_model, out)
    assert {v.key: v.status for v in report.videos}["other"] == "done"
    assert_complete(out, "other", videos["other"])
    assert PARTIAL not in committed(out)  # the dead attempt's files are gone, not kept beside the new ones


def test_outputs_never_go_among_the_inputs(videos, tiny_model, tmp_path):
    before = {p: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    res = run_cli("batch", tmp_path / "a", "--out", tmp_path / "a", "--model", tiny_model, "--no-ray")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "holds this batch's input" in res.stderr.strip().splitlines()[-1]
    assert {p: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before


def test_a_request_that_cannot_run_is_refused_in_one_line_and_leaves_no_folder(videos, tiny_model, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    video, out = str(videos["other"]), str(tmp_path / "out")
    refused = {
        "no videos match": [str(tmp_path / "nowhere" / "*.avi"), "--out", out],
        "is a file, not a folder": [video, "--out", str(a_file)],
        "is not a video file": [os.devnull, "--out", out],  # a device: rtseg run reads those
        "--workers 2 needs Ray": [video, "--out", out, "--no-ray", "--workers", "2"],
        "no such model file": [video, "--out", out, "--model", str(tmp_path / "missing.onnx")],
    }
    for reason, args in refused.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), logger_kept("rtseg"):
            code = main(["batch", "--model", str(tiny_model), *args])
        assert code == 1 and err.getvalue().splitlines() == [err.getvalue().strip()], (reason, err.getvalue())
        assert err.getvalue().startswith("rtseg: error: ") and reason in err.getvalue()
        assert not Path(out).exists()


@pytest.mark.parametrize(
    "signum, code, said",
    [(signal.SIGINT, 130, "rtseg: interrupted"), (signal.SIGTERM, 143, "rtseg: terminated")],
    ids=["ctrl-c", "sigterm"],
)
def test_a_batch_stopped_mid_video_keeps_what_is_done_and_nothing_of_the_rest(long_clip, tiny_model, tmp_path, signum, code, said):
    inputs = tmp_path / "in"
    clip_at(inputs / "first.avi", 5)
    os.link(long_clip, inputs / "long.avi")
    out = tmp_path / "out"
    # every inference 50 ms longer (a heavy model): the long video takes over a minute, so the signal certainly
    # comes while it is being done, however fast or busy the machine
    with CliRun("batch", inputs, "--out", out, "--model", tiny_model, "--no-ray", "--quiet", infer_delay_s=0.05, say=True) as run:
        # the overlay is written under a staging name (.long.rtseg-PID.mp4) until it closes: any name will do
        wait_for(lambda: list((out / PARTIAL).glob("long/*/*long*.mp4")), "the long video's output opened", run=run, poll_s=0.01)
        opened = time.monotonic()
        # the signal comes once the long video's frames are being inferred (mid-video, wiring done)
        wait_for(
            lambda: sum(t > opened and "rtseg-test: inferred" in line for t, line in run.err_lines) >= 3,
            "the long video's first frames inferred",
            run=run,
        )
        run.send(signum)
        returncode = run.finish(60)
    stderr = run.stderr
    said_last = [line for line in stderr.strip().splitlines() if not line.startswith("rtseg-test:")][-1]
    assert returncode == code and said_last == said and "Traceback" not in stderr, stderr
    assert committed(out) == {"first.mp4", "first.done.json"}  # the staged half of long.mp4 is gone too


def test_a_broken_video_fails_alone_and_the_exit_status_says_so(videos, tiny_model, tmp_path):
    bad = tmp_path / "a" / "broken.avi"
    bad.write_bytes(videos["a__clip_avi"].read_bytes()[:2000])  # its header, and half a frame
    out = tmp_path / "out"
    res = run_cli("batch", tmp_path / "a", "--out", out, "--model", tiny_model, "--no-ray", "--quiet")
    assert res.returncode == 1 and all(line.startswith("rtseg: ") for line in res.stderr.splitlines()), res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("broken "))
    assert "failed" in row and "not a readable video" in row  # the reason, on its row
    assert not any(p.name.startswith("broken") for p in out.iterdir())  # nothing of it committed
    assert_complete(out, "clip", videos["a__clip_avi"])  # the others are done all the same
    res = run_cli("batch", tmp_path / "a", "--out", out, "--model", tiny_model, "--no-ray")
    assert res.returncode == 1 and "0 done, 2 skipped, 1 failed" in res.stdout  # a re-run retries only the failure


def test_without_ray_the_batch_runs_in_one_process_unless_it_needs_ray(videos, tiny_model, tmp_path):
    hide = "import sys; sys.modules['ray'] = None; from rtseg.cli import main; sys.exit(main(sys.argv[1:]))"
    args = [str(videos["other"]), "--out", str(tmp_path / "out"), "--model", str(tiny_model)]
    res = subprocess.run([sys.executable, "-c", hide, "batch", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Ray is not installed" in res.stderr and "in this process" in res.stdout
    res = subprocess.run([sys.executable, "-c", hide, "batch", *args, "--workers", "2"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "--workers 2 needs Ray: pip install 'rtseg[ray]'" in res.stderr
    assert "Traceback" not in res.stderr


# -- on Ray ------------------------------------------------------------------------------------------
def test_the_command_starts_a_local_ray_cluster_of_its_own(videos, tiny_model, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    res = run_cli("batch", *videos.values(), "--out", out, "--model", tiny_model, "--workers", "2", "--json")
    assert res.returncode == 0, res.stderr
    assert "with 2 worker(s) on a local Ray cluster" in res.stdout
    for key, video in videos.items():
        assert_complete(out, key, video, json_lines=True)


def test_a_ray_address_that_does_not_answer_is_refused_at_once(monkeypatch):
    pytest.importorskip("ray")
    from rtseg.core.errors import RtsegError
    from rtseg.fleet.ray_fleet import check_reachable

    # "auto" is what RAY_ADDRESS or the last `ray start` here says (127.0.0.1 as this node's address): Ray
    # would wait on a stale one for ever
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    for address, said in [("127.0.0.1:1", re.escape("127.0.0.1:1")), ("auto", r"auto \(\S+:1\)")]:
        with pytest.raises(RtsegError, match=rf"^cannot reach Ray at {said}: "):
            check_reachable(address, timeout_s=2)


@pytest.fixture(scope="module")
def ray_cluster():
    """Two CPUs on this machine: two workers at most."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield ray
    ray.shutdown()


def test_a_worker_killed_mid_video_loses_nothing(ray_cluster, long_clip, tiny_model, tmp_path):
    (tmp_path / "in").mkdir()
    long = tmp_path / "in" / "long.avi"
    os.link(long_clip, long)
    short = [clip_at(tmp_path / "in" / f"short{i}.avi", 20) for i in range(3)]
    killed, retried = {}, []

    def kill_the_long_videos_worker(event):
        if isinstance(event, Progress) and event.key == "long" and event.frames > 0 and not killed:
            killed.update(pid=event.pid, frames=event.frames)
            os.kill(event.pid, signal.SIGKILL)
        if isinstance(event, Retry):
            retried.append(event)

    out = tmp_path / "out"
    report = run_batch(
        BatchRequest((str(tmp_path / "in"),), str(out), model=str(tiny_model), workers=2, quiet=True), on_event=kill_the_long_videos_worker
    )
    assert 0 < killed["frames"] < LONG_FRAMES  # it died mid-video...
    assert [(r.key, r.attempt) for r in retried] == [("long", 2)]
    outcome = {v.key: v for v in report.videos}
    assert outcome["long"].status == "done" and outcome["long"].attempt == 2  # ...and the video was done again
    for video in [long, *short]:
        assert_complete(out, video.stem, video)
    assert json.loads((out / "long.done.json").read_text())["worker"] != f"{socket.gethostname()}:{killed['pid']}"
    # exactly one output per video: nothing of the dead attempt is left, let alone taken for a result
    assert committed(out) == {f"{v.stem}{s}" for v in [long, *short] for s in (".mp4", ".done.json")}


def test_a_ray_batch_resumes(ray_cluster, videos, tiny_model, tmp_path):
    out = tmp_path / "out"
    first = batch(videos.values(), tiny_model, out, no_ray=False, workers=2)
    assert {v.status for v in first.videos} == {"done"} and first.workers == 2
    again = batch(videos.values(), tiny_model, out, no_ray=False, workers=2)
    assert {v.status for v in again.videos} == {"skipped"} and again.workers == 0  # not even a worker started
    (out / "b__clip_avi.mp4").unlink()
    redo = batch(videos.values(), tiny_model, out, no_ray=False, workers=2)
    assert {v.key: v.status for v in redo.videos} == {"a__clip_avi": "skipped", "b__clip_avi": "done", "other": "skipped"}
    assert_complete(out, "b__clip_avi", videos["b__clip_avi"])


def test_a_killed_driver_leaves_nothing_the_next_run_does_not_end(videos, tiny_model, tmp_path):
    """SIGKILL the batch's driver while its local Ray cluster runs: the next local cluster ends what was left
    (Ray's agents outlive a killed driver) and says so."""
    pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")
    env = {**os.environ, "RTSEG_CACHE_DIR": str(tmp_path / "cache")}
    inputs = tmp_path / "in"
    inputs.mkdir()
    os.link(videos["other"], inputs / "x.avi")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtseg", "batch", inputs, "--out", tmp_path / "out", "--model", tiny_model, "--workers", "1", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "cache" / "ray-local").glob("*.json")) and proc.poll() is None:
            assert time.monotonic() < deadline, "the local cluster was never noted"
            time.sleep(0.05)  # until the cluster has started and its processes are noted
        noted = json.loads(next((tmp_path / "cache" / "ray-local").glob("*.json")).read_text())["processes"]
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    res = run_cli("batch", inputs, "--out", tmp_path / "out2", "--model", tiny_model, "--workers", "1", env=env, timeout=180)
    assert res.returncode == 0, res.stderr
    left = [p for p in noted if psutil.pid_exists(p["pid"]) and abs(psutil.Process(p["pid"]).create_time() - p["started"]) < 0.01]
    assert not left, f"still running after the next run: {left}"
    assert not list((tmp_path / "cache" / "ray-local").glob("*.json"))  # the second run's note went with it
