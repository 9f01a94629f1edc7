"""Writing a whole file so that a failure leaves what was there before: never half a file, never an empty one.

The bytes go to a hidden temporary file beside the target (same file system), are flushed to disk, and
replace the target in one rename. A symlink is written through (its target replaced, the link kept); a
device or pipe (`/dev/stdout`, a FIFO) is written in place, since renaming over it would replace the device.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import RtsegError


def is_special(path: Path) -> bool:
    """A device or pipe (or a link to one): something to write into, never to replace or remove."""
    try:
        return path.exists() and not path.is_file()
    except OSError:
        return False


def write_file_atomically(path: Path, data: bytes, what: str) -> None:
    """`data` into `path`, all or nothing; an OSError becomes one line naming `what` (e.g. "--stats")."""
    path = Path(path)
    try:
        if is_special(path):
            with open(path, "wb") as f:
                f.write(data)
            return
        real = Path(os.path.realpath(path))
        tmp = real.with_name(f".{real.name}.rtseg-{os.getpid()}.part")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, real)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise RtsegError(f"cannot write {what} {path}: {e.strerror or e}") from e
