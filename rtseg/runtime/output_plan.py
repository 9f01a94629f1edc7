"""Every file a run will write, gathered and checked before the first frame, and held while it runs.

A run may write an overlay (`--output`), JSON lines (`--json`), a stats file (`--stats`) and mask PNGs
(`--save-masks`). Each is checked here against the run's inputs and against the others by what the file
system says they are (the same inode through a symlink, a hard link, `./` or `..` forms, a relative and an
absolute spelling), never by comparing strings; a folder where a file is expected, or masks poured into a
folder of someone else's files, is refused too. Then every output is locked for the run (`OutputLock`), so
a second run on the same outputs is refused in one line instead of interleaving its results with ours.

Inputs that an output may replace with `--overwrite` are `outputs.refuse_overwriting_inputs`'s business;
this module refuses what no flag makes safe.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..core.errors import RtsegError
from ..core.paths import cache_dir
from .atomic_write import write_file_atomically
from .sinks import Sink

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: no flock; outputs are checked but not locked there
    fcntl = None


@dataclass(frozen=True)
class PlannedOutput:
    """One path a run writes, with the flag that named it."""

    flag: str  # --output, --json, --stats, --save-masks
    path: Path
    folder: bool = False


def identity(path: Path) -> tuple:
    """What a path *is*: (device, inode) of an existing file (symlinks followed, so every alias of one file
    agrees), else its fully resolved absolute path (case-folded where the folder ignores case)."""
    try:
        st = path.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        resolved = Path(os.path.realpath(path))
        return ("path", os.path.normcase(str(resolved)))


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (or folder), however each is spelt."""
    return identity(a) == identity(b)


def check_plan(planned: list[PlannedOutput], inputs: list[Path], overwrite: bool = False) -> None:
    """Refuse, in one line, any output that is a folder where a file goes, that two flags name alike, that is
    the stats file over an input, or a mask folder that already holds files (without `overwrite`)."""
    seen: dict[tuple, PlannedOutput] = {}
    input_ids = {identity(f): f for f in inputs}
    for out in planned:
        if not out.folder and out.path.is_dir():
            raise RtsegError(f"cannot write {out.flag} {out.path}: it is a folder")
        key = identity(out.path)
        if key in seen:
            raise RtsegError(f"{seen[key].flag} {seen[key].path} and {out.flag} {out.path} are the same file: each output needs its own")
        seen[key] = out
        if out.flag == "--stats" and key in input_ids:
            raise RtsegError(f"--stats {out.path} is an input of this run ({input_ids[key]}): it would be replaced")
    masks = next((o for o in planned if o.folder), None)
    if masks is not None:
        _check_mask_folder(masks, [o for o in planned if not o.folder], inputs, overwrite)


def _check_mask_folder(masks: PlannedOutput, files: list[PlannedOutput], inputs: list[Path], overwrite: bool) -> None:
    folder = masks.path
    if folder.exists() and not folder.is_dir():
        raise RtsegError(f"--save-masks {folder} is a file, not a folder")
    folder_id = identity(folder)
    for f in files:
        if identity(f.path.parent) == folder_id and (f.path.suffix.lower() == ".png" or f.path.name == "classes.json"):
            raise RtsegError(f"{f.flag} {f.path} is inside --save-masks {folder}, where masks are written: put it elsewhere")
    if folder.is_dir() and not overwrite:
        input_ids = {identity(p) for p in inputs}
        others = [p for p in folder.iterdir() if identity(p) not in input_ids]
        if others:
            raise RtsegError(
                f"--save-masks {folder} already holds {len(others)} file(s) ({others[0].name}, ...): "
                "masks would replace them; use an empty folder, or --overwrite"
            )


class OutputLock(Sink):
    """An exclusive lock on each planned output for as long as the run's sinks are open.

    The locks are `flock`s on small files in rtseg's cache folder named after each output's resolved path
    (not beside the outputs: no litter in the user's folders); the kernel drops them when the process
    ends, however it ends, so a killed run never leaves a stale lock behind.
    """

    takes_i420 = True

    def __init__(self, planned: list[PlannedOutput]):
        self.handles: list = []
        if fcntl is None:
            return
        folder = cache_dir() / "locks"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # no cache folder to lock in: the run goes on unlocked rather than not at all
        try:
            for out in planned:
                name = hashlib.sha256(os.path.normcase(os.path.realpath(out.path)).encode()).hexdigest()[:32]
                handle = open(folder / f"{name}.lock", "a+")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    raise RtsegError(
                        f"{out.flag} {out.path} is being written by another rtseg run; wait for it to finish or pick another path"
                    ) from None
                self.handles.append(handle)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for handle in self.handles:
            handle.close()  # closing the file releases its flock
        self.handles = []


def planned_outputs(output: str | None, json_lines: str | None, stats: str | None, save_masks: str | None) -> list[PlannedOutput]:
    """The outputs a run's flags name, in one list (an overlay image written per frame counts as its file)."""
    planned = [
        PlannedOutput(flag, Path(p))
        for flag, p in (("--output", output), ("--json", json_lines), ("--stats", stats))
        if isinstance(p, str) and p
    ]
    if save_masks:
        planned.append(PlannedOutput("--save-masks", Path(save_masks), folder=True))
    return planned


def write_atomically(path: Path, text: str, flag: str) -> None:
    """`text` (UTF-8) into `path`, all or nothing (`atomic_write.write_file_atomically`)."""
    write_file_atomically(Path(path), text.encode("utf-8"), flag)
