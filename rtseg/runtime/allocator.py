"""Keep freed frame buffers for the next frame instead of handing them back to the kernel (glibc only).

Every frame makes a few arrays of about a megabyte (the decoded frame, the overlay, the full-size mask),
in one thread and freed in another. With glibc's defaults the heaps holding them are trimmed as soon as a
few megabytes lie free at their top, so the next frame's arrays arrive as new pages that the kernel must
fault in and zero: about 180 page faults a frame at 768x576 with the null backend, against about 14 with
the thresholds below (`tests/test_pipeline.py` checks this; `benchmarks/results/pipeline_ab2_cpu.md` has
the CPU time). Raising glibc's mmap threshold above a frame's size (which also stops its adaptive
threshold) and its trim threshold to a few dozen frames keeps those blocks in the heap for the next
frame. The cost is at most that much free memory held per heap. Other C libraries (musl, macOS) are
left as they are, and so is glibc when the environment says RTSEG_KEEP_BUFFERS=0.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit: blocks up to a 4K frame's size
TRIM_THRESHOLD = 32 * 1024 * 1024  # free memory a heap may keep at its top before it is trimmed

_done: bool | None = None


def keep_frame_buffers() -> bool:
    """Set glibc's thresholds once per process; True when they were set. Idempotent; a no-op elsewhere."""
    global _done
    if _done is None:
        _done = False
        if platform.libc_ver()[0] == "glibc" and os.environ.get("RTSEG_KEEP_BUFFERS", "1") != "0":
            mallopt = ctypes.CDLL(None).mallopt  # the libc this process runs on
            _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
