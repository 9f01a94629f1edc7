"""Processes of a local Ray cluster whose driver died: noted when the cluster starts, ended by the next run.

A local cluster that `rtseg batch` or `rtseg serve` starts stops with its driver when the driver exits
normally. Killed with SIGKILL, the driver cannot stop it: Ray's GCS and raylet go, but its dashboard and
runtime-env agents were seen to stay behind, reparented to init, until killed by hand. So right after a
local cluster starts, its processes (the driver's descendants: pid and start time, which together name a
process even after pids wrap) are written to a small file in rtseg's cache folder; a clean exit removes
it; the next local cluster ends whatever a dead driver left, and says so.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..core.errors import RtsegError
from ..core.paths import cache_dir
from ..runtime.atomic_write import write_file_atomically

log = logging.getLogger("rtseg")


def _records() -> Path:
    return cache_dir() / "ray-local"


_noted: Path | None = None  # this process's note, while its local cluster runs


def note_cluster() -> Path | None:
    """Write down this driver's descendant processes (the local cluster it just started); the file's path,
    or None where psutil is missing or the cache folder is not writable (then nothing can be cleaned up)."""
    global _noted
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    procs = []
    for child in me.children(recursive=True):
        try:
            procs.append({"pid": child.pid, "started": child.create_time()})
        except psutil.Error:
            continue
    path = _records() / f"{os.getpid()}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # whole or not at all: the next run (or a test) may read it while this one is still writing it
        write_file_atomically(
            path,
            json.dumps({"driver": {"pid": me.pid, "started": me.create_time()}, "processes": procs}).encode(),
            "the Ray cluster record",
        )
    except (OSError, RtsegError):
        return None
    _noted = path
    return path


def forget_cluster() -> None:
    """The driver is stopping its cluster itself: nothing will be left to clean up."""
    global _noted
    if _noted is not None:
        _noted.unlink(missing_ok=True)
        _noted = None


def end_leftovers() -> int:
    """End the processes of earlier local clusters whose driver is gone; how many were ended."""
    try:
        import psutil
    except ImportError:
        return 0
    ended = 0
    for record in sorted(_records().glob("*.json")) if _records().is_dir() else []:
        try:
            data = json.loads(record.read_text())
            driver = data["driver"]
            if _alive(psutil, driver["pid"], driver["started"]):
                continue  # its driver still runs: its cluster is in use
            for p in data["processes"]:
                if _alive(psutil, p["pid"], p["started"]):
                    psutil.Process(p["pid"]).kill()
                    ended += 1
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass  # a damaged record, or a process that went meanwhile: nothing more to do for it
        record.unlink(missing_ok=True)
    if ended:
        log.warning(f"rtseg: ended {ended} process(es) left by an earlier local Ray cluster whose rtseg was killed")
    return ended


def _alive(psutil, pid: int, started: float) -> bool:
    """Whether the process `pid` that started at `started` still runs (not another one given the same pid)."""
    try:
        return abs(psutil.Process(pid).create_time() - started) < 0.01
    except psutil.Error:
        return False
