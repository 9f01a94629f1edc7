"""Every output is checked against every input and every other output by what the file system says they
are (inode, resolved path), never by their spelling; outputs are locked for the run and written whole."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import count_frames, frame_lines, run_cli, write_clip

from rtseg.cli import main


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def refused(*args, cwd: Path) -> str:
    """`rtseg run ...` in this process, from `cwd`: exit 1 and one `rtseg: error:` line."""
    err = io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", *map(str, args)])
    finally:
        os.chdir(before)
    lines = [line for line in err.getvalue().strip().splitlines() if line.startswith("rtseg: error:")]
    assert code == 1 and len(lines) == 1, (args, code, err.getvalue())
    return lines[0]


def alias(kind: str, target: Path, work: Path) -> str:
    """Another way of naming `target` (a file in `work`), as a user might type it from `work`."""
    if kind == "relative":
        return target.name
    if kind == "absolute":
        return str(target.resolve())
    if kind == "dot":
        return f"./{target.name}"
    if kind == "dotdot":
        return f"../{work.name}/{target.name}"
    if kind == "symlink":
        link = work / f"link-{target.name}"
        link.symlink_to(target.name)
        return link.name
    if kind == "hardlink":
        hard = work / f"hard-{target.name}"
        os.link(target, hard)
        return hard.name
    raise ValueError(kind)


ALIASES = ["absolute", "dot", "dotdot", "symlink", "hardlink"]


@pytest.fixture
def work(tmp_path, tiny_model):
    work = tmp_path / "work"
    work.mkdir()
    write_clip(work / "in.avi", 6)
    return work


@pytest.mark.parametrize("flag", ["--output", "--json", "--stats"])
@pytest.mark.parametrize("kind", ALIASES)
def test_no_output_replaces_the_input_under_any_name(work, tiny_model, flag, kind):
    before = digest(work / "in.avi")
    line = refused("in.avi", "--model", tiny_model, "--no-show", flag, alias(kind, work / "in.avi", work), cwd=work)
    assert "input" in line
    assert digest(work / "in.avi") == before


@pytest.mark.parametrize("kind", ["relative", *ALIASES])
@pytest.mark.parametrize("first,second", [("--output", "--stats"), ("--output", "--json"), ("--json", "--stats")])
def test_two_outputs_may_not_be_one_file(work, tiny_model, first, second, kind):
    target = work / "o.mp4"
    if kind in ("symlink", "hardlink"):
        target.write_bytes(b"")  # a link needs something to point at
    line = refused("in.avi", "--model", tiny_model, "--no-show", first, "o.mp4", second, alias(kind, target, work), cwd=work)
    assert "same file" in line and first in line and second in line


def test_case_folded_names_are_one_file_where_the_folder_ignores_case(work, tiny_model):
    probe = work / "CaseProbe"
    probe.write_text("")
    if not (work / "caseprobe").exists():
        pytest.skip("this folder is case-sensitive: IN.AVI and in.avi are different files here")
    refused("in.avi", "--model", tiny_model, "--no-show", "--stats", "IN.AVI", cwd=work)


def test_stats_is_written_whole_and_a_folder_or_full_device_is_one_line(work, tiny_model):
    assert "is a folder" in refused("in.avi", "--model", tiny_model, "--no-show", "--stats", str(work), cwd=work)
    res = run_cli("run", work / "in.avi", "--model", tiny_model, "--no-show", "--quiet", "--stats", work / "s.json")
    assert res.returncode == 0, res.stderr
    assert json.loads((work / "s.json").read_text())["frames_out"] == 6
    if Path("/dev/full").exists():
        res = run_cli("run", work / "in.avi", "--model", tiny_model, "--no-show", "--quiet", "--stats", "/dev/full")
        assert res.returncode == 1 and "Traceback" not in res.stderr and "--stats /dev/full" in res.stderr
        assert Path("/dev/full").is_char_device()  # written in place, never renamed over


def test_a_second_run_on_the_same_outputs_is_refused(work, tiny_model, tmp_path, monkeypatch):
    """The lock is what a second rtseg run would take: held here, the run must refuse in one line."""
    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "cache"))
    from rtseg.runtime.output_plan import OutputLock, PlannedOutput

    held = OutputLock([PlannedOutput("--json", work / "o.jsonl")])
    try:
        assert held.handles, "the first lock was not taken"
        env = {**os.environ, "RTSEG_CACHE_DIR": str(tmp_path / "cache")}
        res = run_cli("run", work / "in.avi", "--model", tiny_model, "--no-show", "--json", "./work/o.jsonl", env=env, cwd=tmp_path)
        assert res.returncode == 1 and "another rtseg run" in res.stderr, res.stderr
        assert not (work / "o.jsonl").exists()
    finally:
        held.close()
    res = run_cli("run", work / "in.avi", "--model", tiny_model, "--no-show", "--json", work / "o.jsonl", env=env)
    assert res.returncode == 0 and len(frame_lines(work / "o.jsonl")) >= 6


def test_masks_do_not_replace_a_users_files_without_overwrite(work, tiny_model):
    masks = work / "masks"
    masks.mkdir()
    (masks / "000000.png").write_bytes(b"mine")
    line = refused("in.avi", "--model", tiny_model, "--no-show", "--save-masks", "masks", cwd=work)
    assert "already holds" in line and (masks / "000000.png").read_bytes() == b"mine"
    assert "--save-masks" in refused("in.avi", "--model", tiny_model, "--no-show", "--save-masks", "in.avi", cwd=work)


def test_a_run_without_frames_leaves_no_file_and_the_old_one_untouched(work, tiny_model):
    bad = work / "bad"
    bad.mkdir()
    for i in range(2):
        (bad / f"x{i}.png").write_bytes(b"not a png")
    (work / "old.mp4").write_bytes(b"previous")
    res = run_cli("run", bad, "--model", tiny_model, "--no-show", "--output", work / "old.mp4", "--json", work / "new.jsonl")
    assert res.returncode == 1 and "no frame" in res.stderr and "Traceback" not in res.stderr
    assert (work / "old.mp4").read_bytes() == b"previous" and not (work / "new.jsonl").exists()
    assert not [p for p in work.iterdir() if ".rtseg-" in p.name]  # no staging file left behind


def test_outputs_replace_old_files_only_once_whole(work, tiny_model):
    (work / "o.mp4").write_bytes(b"previous")
    res = run_cli("run", work / "in.avi", "--model", tiny_model, "--no-show", "--output", work / "o.mp4")
    assert res.returncode == 0, res.stderr
    assert count_frames(work / "o.mp4") == 6
    assert not [p for p in work.iterdir() if ".rtseg-" in p.name]


def test_a_failed_image_write_keeps_the_previous_image(work, tiny_model, monkeypatch):
    from rtseg.core.errors import RtsegError
    from rtseg.runtime import atomic_write

    target = work / "prev.png"
    target.write_bytes(b"previous")

    def full_disk(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_write.os, "fsync", full_disk)
    with pytest.raises(RtsegError, match="No space left"):
        atomic_write.write_file_atomically(target, b"new image", "image")
    assert target.read_bytes() == b"previous" and [p.name for p in work.iterdir() if "prev" in p.name] == ["prev.png"]


def test_a_symlinked_output_is_written_through(work, tiny_model):
    (work / "real.json").write_text("old")
    (work / "link.json").symlink_to("real.json")
    res = run_cli("run", work / "in.avi", "--model", tiny_model, "--no-show", "--quiet", "--stats", work / "link.json")
    assert res.returncode == 0, res.stderr
    assert (work / "link.json").is_symlink() and json.loads((work / "real.json").read_text())["frames_out"] == 6


def test_a_pipe_with_no_writer_is_given_up_on(work, tiny_model, monkeypatch):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    os.mkfifo(work / "pipe")
    env = {**os.environ}
    code = (
        "import rtseg.runtime.sources as s, sys; s.FIFO_WAIT_S = 0.5; from rtseg.cli import main; "
        f"sys.exit(main(['run', {str(work / 'pipe')!r}, '--model', {str(tiny_model)!r}, '--no-show']))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 1 and "no writer" in res.stderr and "Traceback" not in res.stderr


def test_a_pipe_is_read_once_to_its_end(work, tiny_model):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    os.mkfifo(work / "pipe")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtseg",
            "run",
            str(work / "pipe"),
            "--model",
            str(tiny_model),
            "--no-show",
            "--quiet",
            "--json",
            str(work / "p.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open(work / "pipe", "wb") as f:  # blocks until the run opens the pipe: the event we wait for
            f.write((work / "in.avi").read_bytes())
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a hung run must not outlive the test
            proc.kill()
    assert proc.returncode == 0, err
    assert len(frame_lines(work / "p.jsonl")) == 6


def test_lock_files_live_in_the_cache_not_beside_outputs(work, tmp_path, monkeypatch):
    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "cache"))
    from rtseg.runtime.output_plan import OutputLock, PlannedOutput

    lock = OutputLock([PlannedOutput("--output", work / "x.mp4")])
    try:
        handle = open(lock.handles[0].name)
        with pytest.raises(BlockingIOError):  # held exclusively
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.close()
    finally:
        lock.close()
    assert sorted(p.name for p in work.iterdir()) == ["in.avi"]


def test_hostile_output_paths_never_change_an_input(tmp_path, tiny_model):
    """Any mix of --output, --json, --stats and --save-masks, each named by any alias of the inputs or of each
    other: the run may refuse, or write its outputs, but the input clip stays as it was (a file named as an
    output, like mine.txt, is the user's to replace)."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    work = tmp_path / "work"
    work.mkdir()
    write_clip(work / "in.avi", 3)
    (work / "mine.txt").write_text("the user's own file")
    (work / "link.avi").symlink_to("in.avi")
    os.link(work / "in.avi", work / "hard.avi")
    protected = {work / "in.avi": digest(work / "in.avi")}
    names = st.sampled_from(
        [
            "in.avi",
            "./in.avi",
            "../work/in.avi",
            str(work / "in.avi"),
            "link.avi",
            "hard.avi",
            "mine.txt",
            "o.mp4",
            "./o.mp4",
            "o.json",
            "sub",
            ".",
            "..",
            "masks",
        ]
    )
    flags = st.dictionaries(st.sampled_from(["--output", "--json", "--stats", "--save-masks"]), names, min_size=1)

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(chosen=flags)
    def run(chosen):
        args = ["run", "in.avi", "--model", str(tiny_model), "--no-show", "--quiet"]
        for flag, value in chosen.items():
            args += [flag, value]
        before = os.getcwd()
        os.chdir(work)
        try:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                main(args)
        finally:
            os.chdir(before)
        assert {p: digest(p) for p in protected} == protected, chosen

    run()
