"""The batch in this process: the same plan, one video after another, the model loaded once.

What runs without Ray (not installed, or `--no-ray`), and the reference the Ray fleet is measured against:
one pipeline with the machine to itself, its inference on every core.
"""

from __future__ import annotations

from typing import Iterator

from .plan import VideoJob, WorkerSpec
from .video import Outcome, Progress, process_video


def run_in_process(jobs: list[VideoJob], spec: WorkerSpec) -> Iterator[Progress | Outcome]:
    """Every job in turn, with one loaded model; yields each video's events as they happen."""
    if not jobs:
        return
    slot = spec.load()
    try:
        for job in jobs:
            yield from process_video(job, slot)
    finally:
        slot.close()
