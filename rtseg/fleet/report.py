"""What a batch shows: one progress bar over the whole fleet while it runs, one table when it ends."""

from __future__ import annotations

from tqdm import tqdm

from .plan import VideoJob
from .video import Outcome, Progress, Retry


class FleetProgress:
    """Frames written across every video still to do, out of the frames their headers announce.

    Each video counts the frames of its current attempt: a retried video starts again from 0, and a failed
    one leaves the total, so the bar ends full whatever happened on the way.
    """

    def __init__(self, jobs: list[VideoJob], enabled: bool = True):
        self.announced = {j.key: j.frames or 0 for j in jobs}
        self.frames: dict[str, int] = {}
        self.videos, self.done, self.failed = len(jobs), 0, 0
        self.bar = tqdm(
            total=sum(self.announced.values()) or None,
            unit="frame",
            desc="rtseg batch",
            dynamic_ncols=True,
            disable=not enabled,
            leave=False,
        )

    def update(self, event: Progress | Retry | Outcome) -> None:
        if isinstance(event, Progress):
            self.frames[event.key] = event.frames
        elif isinstance(event, Retry):
            self.frames[event.key] = 0
        elif isinstance(event, Outcome):
            if event.status == "failed":
                self.failed += 1
                self.frames[event.key] = 0
                if self.bar.total:
                    self.bar.total -= self.announced.get(event.key, 0)
            else:
                self.done += 1
        self.bar.n = sum(self.frames.values())
        self.bar.set_postfix_str(
            f"{self.done + self.failed}/{self.videos} videos" + (f", {self.failed} failed" if self.failed else ""), refresh=False
        )
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def summary_table(outcomes: list[Outcome]) -> str:
    """Per video: frames written, FPS, done / skipped / failed, and a note (a failure's one-line reason)."""
    width = max([len("video")] + [len(o.key) for o in outcomes])
    lines = [f"{'video':<{width}}  {'frames':>7}  {'FPS':>7}  {'status':<8}  note"]
    for o in outcomes:
        frames = f"{o.frames_out:>7}" if o.status != "failed" else f"{'-':>7}"
        fps = f"{o.fps:>7.1f}" if o.status != "failed" else f"{'-':>7}"
        note = o.note or ""
        if o.attempt > 1:
            note = f"attempt {o.attempt} (a worker died)" + (f"; {note}" if note else "")
        lines.append(f"{o.key:<{width}}  {frames}  {fps}  {o.status:<8}  {note}".rstrip())
    return "\n".join(lines)
