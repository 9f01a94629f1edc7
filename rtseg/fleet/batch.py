"""A batch from request to report: plan it, run what is left on the fleet (or in this process), show it."""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Callable, Generator

from ..core.errors import RtsegError
from .commit import clear_staging, remove_empty_staging
from .plan import BatchRequest, VideoJob, WorkerSpec, check_out_dir, choose_model, find_videos, make_plan, model_options, prepare_out_dir
from .report import FleetProgress, summary_table
from .video import Outcome, Progress, Retry

log = logging.getLogger(__name__)

Event = Progress | Retry | Outcome


@dataclass
class Layout:
    """Where the batch ran, learnt as its fleet starts."""

    workers: int = 0  # videos processed at once (0: there was nothing to do)
    where: str = ""  # "in this process", "on a local Ray cluster", "on Ray at ADDR"
    startup_s: float = 0.0  # starting (or connecting to) Ray


@dataclass
class BatchReport:
    """How a batch ended: every video's outcome, in the order the videos were given."""

    videos: list[Outcome]
    out_dir: Path
    layout: Layout
    seconds: float  # wall time of the work (Ray's start-up included), planning aside

    @property
    def workers(self) -> int:
        return self.layout.workers

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.videos)

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def frames(self) -> int:
        """Frames written by this batch (skipped videos were written before)."""
        return sum(o.frames_out for o in self.videos if o.status == "done")

    def footer(self) -> str:
        counts = f"{len(self.videos)} video(s): {self.count('done')} done, {self.count('skipped')} skipped, {self.failed} failed"
        if not self.workers:
            return f"{counts}; nothing was left to do; outputs in {self.out_dir}"
        startup = self.layout.startup_s
        return (
            f"{counts}; {self.frames} frames in {self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} "
            f"FPS with {self.workers} worker(s) {self.layout.where}"
            + (f", {startup:.1f} s of it starting Ray" if startup >= 0.05 else "")
            + f"); outputs in {self.out_dir}"
        )


def ray_installed() -> bool:
    try:
        return find_spec("ray") is not None
    except (ImportError, ValueError):  # hidden or broken (sys.modules["ray"] = None)
        return False


def use_ray(request: BatchRequest) -> bool:
    """Ray when it is installed and not declined; without it, one process, unless the request needs Ray."""
    if request.no_ray:
        if request.ray_address:
            raise RtsegError("--no-ray and --ray-address contradict each other: choose one")
        if request.workers and request.workers > 1:
            raise RtsegError(f"--no-ray runs one video at a time: --workers {request.workers} needs Ray")
        return False
    if ray_installed():
        return True
    if request.ray_address or (request.workers or 1) > 1:
        what = "--ray-address" if request.ray_address else f"--workers {request.workers}"
        raise RtsegError(f"{what} needs Ray: pip install 'rtseg[ray]' (or --no-ray: one video at a time here)")
    log.info("rtseg: batch: Ray is not installed, so one video at a time in this process (pip install 'rtseg[ray]' for parallel workers)")
    return False


def _events(jobs: list[VideoJob], spec: WorkerSpec, request: BatchRequest, on_ray: bool, layout: Layout) -> Generator[Event, None, None]:
    """Every job's events from wherever they run; `layout` learns how many workers ran them, and where."""
    if not jobs:  # nothing to do: no model loaded, no cluster started
        return
    if not on_ray:
        from .local import run_in_process

        layout.workers, layout.where = 1, "in this process"
        yield from run_in_process(jobs, spec)
        return
    from .ray_fleet import RayFleet

    workers = request.workers or (None if request.ray_address else os.cpu_count() or 1)
    t0 = time.perf_counter()
    with RayFleet(spec, workers, request.ray_address, request.retries) as fleet:
        layout.startup_s = time.perf_counter() - t0
        layout.where = f"on Ray at {request.ray_address}" if request.ray_address else "on a local Ray cluster"
        assert fleet.workers is not None  # entering the fleet sets it
        layout.workers = min(fleet.workers, len(jobs))
        log.info(f"rtseg: batch: {layout.workers} worker(s) {layout.where}, one CPU and one inference thread each")
        yield from fleet.run(jobs)


def run_batch(request: BatchRequest, on_event: Callable[[Event], None] | None = None) -> BatchReport:
    """Process every video the request names that no done-record vouches for; `on_event` sees each event
    (progress, retries, outcomes) as it arrives. Videos that fail are reported, not raised."""
    videos = find_videos(request.inputs, Path(request.out).resolve())
    check_out_dir(request.out, videos)
    on_ray = use_ray(request)
    spec = choose_model(request, threads=1 if on_ray else None)
    out_dir = prepare_out_dir(request.out)  # only now: a refused request leaves no folder behind
    plan = make_plan(videos, out_dir, model_options(spec, request), request)
    outcomes = {key: Outcome.from_record(key, record) for key, record in plan.records.items()}
    log.info(f"rtseg: batch: {len(plan.jobs)} video(s), {len(plan.records)} done before, {len(plan.todo)} to do with {spec.name}")
    layout = Layout()
    progress = FleetProgress(plan.todo, enabled=not request.quiet and bool(plan.todo))
    events = _events(plan.todo, spec, request, on_ray, layout)
    t0 = time.perf_counter()
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm(loggers=[logging.getLogger("rtseg")]):  # messages above the bar, not through it
            for event in events:
                progress.update(event)
                if isinstance(event, Retry):
                    log.warning(f"rtseg: batch: {event.key}: {event.reason}; attempt {event.attempt} on another worker")
                elif isinstance(event, Outcome):
                    outcomes[event.key] = event
                if on_event is not None:
                    on_event(event)
    finally:
        events.close()  # a fleet left by an exception (Ctrl-C) stops its workers now, not at garbage collection
        progress.close()
        for job in plan.todo:
            if job.key not in outcomes:  # stopped mid-video: its worker is gone, and so are its staged files
                clear_staging(job.outputs)
        remove_empty_staging(out_dir)
    ordered = [outcomes.get(j.key) or Outcome(j.key, "failed", note="no result came back") for j in plan.jobs]
    return BatchReport(ordered, out_dir, layout, time.perf_counter() - t0)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler ending the job), raised where the batch is so that it stops as Ctrl-C stops it."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def batch_command(request: BatchRequest) -> int:
    """`rtseg batch`: run the batch, print the table; the exit status is 1 when any video failed (130 / 143
    when Ctrl-C / SIGTERM stopped it, the videos finished by then kept)."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        report = run_batch(request)
    except Terminated:
        log.error("rtseg: terminated")
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary_table(report.videos))
    print(report.footer())
    if report.failed:
        log.error(
            f"rtseg: batch: {report.failed} of {len(report.videos)} video(s) failed (reasons in the table); "
            "run the same command again to retry them"
        )
        return 1
    return 0
