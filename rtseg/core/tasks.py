"""The one vocabulary of what a model does and what a run or an evaluation asks of it."""

from __future__ import annotations

SEG, DET, SEGDET = "seg", "det", "segdet"
TASKS = (SEG, DET, SEGDET)  # a class map, boxes, or both from one forward pass
_ALIASES = {"both": SEGDET}  # the command line's older word for segdet


def normalize_task(task: str) -> str:
    """`task` in rtseg's vocabulary (seg, det, segdet); 'both' is accepted for segdet."""
    task = _ALIASES.get(task, task)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (one of {', '.join(TASKS)})")
    return task


def has_seg(task: str) -> bool:
    return normalize_task(task) in (SEG, SEGDET)


def has_det(task: str) -> bool:
    return normalize_task(task) in (DET, SEGDET)
