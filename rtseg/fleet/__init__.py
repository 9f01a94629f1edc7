"""`rtseg batch`: many video files, each through the ordinary pipeline once, on a fleet of workers.

    from rtseg.fleet import BatchRequest, run_batch

    report = run_batch(BatchRequest(inputs=("videos/*.mp4",), out="segmented"))
    for video in report.videos:
        print(video.key, video.status, video.frames_out, video.note)

The work is a plan of one job per video (`plan`); a job runs in a worker that keeps its model loaded between
videos (`video`), in this process (`local`) or in Ray actors (`ray_fleet`); what a job writes only counts once
it is committed, by rename, with its done-record last (`commit`), so a re-run skips finished videos and redoes
the rest. `batch` ties these together and `report` shows them.
"""

from __future__ import annotations

from .batch import BatchReport, run_batch
from .plan import BatchRequest

__all__ = ["BatchReport", "BatchRequest", "run_batch"]
