"""The batch on Ray: one actor per worker slot keeps the model loaded; each video is one actor task.

Actors take one CPU each (`num_cpus=1`) and run inference on one thread, so N workers fill N cores with N
videos at once. Each task is a Ray generator (`process_video` yields progress, then its outcome), which the
driver waits on with `ray.wait` beside the others, so one loop feeds the progress bar, hands the next video
to a free actor and notices a dead one.

A worker that dies mid-video is not restarted by Ray (`max_restarts=0`, `max_task_retries=0`: at-most-once,
so nothing is re-run behind the driver's back): its `RayActorError` comes back on the video's generator,
the driver starts a fresh actor in its place and gives the video to the next free one, as attempt n + 1. The
dead attempt's files stay in their staging folder, never committed, and the new attempt clears them first.
(Ray's docs: ray-core/fault_tolerance/actors, ray-core/ray-generator, ray.wait, ray.kill.)
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections import deque
from contextlib import contextmanager
from typing import Any, Iterator

from ..core.errors import RtsegError
from .ray_leftovers import end_leftovers, forget_cluster, note_cluster
from .plan import VideoJob, WorkerSpec
from .video import Outcome, Progress, Retry, process_video

log = logging.getLogger(__name__)

POLL_S = 0.5  # the driver wakes this often with no event, so Ctrl-C and the progress bar stay responsive


class VideoWorker:
    """A Ray actor's state: the batch's model, loaded once; videos go through it one at a time."""

    def __init__(self, spec: WorkerSpec):
        self.slot = spec.load()

    def process(self, job: VideoJob, attempt: int) -> Iterator[Progress | Outcome]:
        yield from process_video(job, self.slot, attempt)


def _auto_address() -> str | None:
    """The HOST:PORT that `ray.init(address="auto")` would connect to (RAY_ADDRESS, else the cluster `ray
    start` last ran here), by Ray's own lookup; None when that lookup is not where it used to be."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return None
    try:
        return canonicalize_bootstrap_address("auto")
    except ConnectionError as e:  # no cluster runs here, and none is named
        raise RtsegError(
            f"--ray-address auto: no Ray cluster runs here ({_one_line(e)}); start one with "
            "`ray start --head`, or leave --ray-address out for a local cluster of the batch's own"
        ) from e
    except Exception:
        return None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT (ray://HOST:PORT, or "auto") that answers, or a one-line error now: Ray itself retries an
    address that does not answer for minutes (forever, for a stale "auto") before it says so."""
    target = _auto_address() if address == "auto" else address.removeprefix("ray://")
    host, sep, port = (target or "").rpartition(":")
    if not sep or not port.isdigit():
        return  # a form Ray resolves itself
    named = address if target == address.removeprefix("ray://") else f"{address} ({target})"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RtsegError(f"cannot reach Ray at {named}: {e.strerror or e}") from e


def _one_line(e: BaseException) -> str:
    """Ray's error texts carry tracebacks and advice over many lines: the last line says what happened."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__


@contextmanager
def _keeping_sigterm_handler() -> Iterator[None]:
    """`ray.init` replaces the SIGTERM handler with Ray's (exit at once with status 15, or a C++ stack dump):
    the one before it is put back, so that `rtseg batch` terminated stops as Ctrl-C stops it (status 143)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def import_ray() -> None:
    """Ray imported, or a one-line error for an install that is there but broken."""
    try:
        import ray  # noqa: F401
    except ImportError as e:  # installed but broken (a missing native library, a version clash)
        raise RtsegError(f"Ray is installed but cannot be imported ({e}); reinstall it (pip install 'rtseg[ray]') or use --no-ray") from e


def connect_ray(address: str | None, local_cpus: int | None) -> bool:
    """Connected to the cluster at `address`, or to a local cluster of `local_cpus` CPUs started for this
    command; False when the caller was connected already (a notebook, a test's cluster: left as it is)."""
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR)  # the terminal is the command's own
    try:
        with _keeping_sigterm_handler():
            if address:
                check_reachable(address)
                ray.init(address=address, **quiet)
            else:
                # "local": a cluster of its own even when another runs here, sized to the workers asked for.
                # Ray binds its control plane to the machine's address, never loopback (it refuses 127.0.0.1
                # as a node address): what keeps others out is Ray's token authentication, on by default for
                # local clusters from Ray 2.59, the oldest the `ray` extra accepts
                end_leftovers()  # what an earlier, killed rtseg's cluster left behind
                ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, **quiet)
                note_cluster()
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RtsegError(f"cannot {'connect to Ray at ' + address if address else 'start Ray'}: {_one_line(e)}") from e
    return True


def disconnect_ray() -> None:
    """Leave Ray (a local cluster started by `connect_ray` stops with it) and forget the note of its processes."""
    import ray

    ray.shutdown()
    forget_cluster()


class RayFleet:
    """A connection to Ray (a local cluster started for the batch, or an existing one) and the batch's actors.

    `with RayFleet(...) as fleet: for event in fleet.run(jobs): ...`; leaving the block kills the actors and,
    when this fleet connected, disconnects (a local cluster it started stops with it).
    """

    def __init__(self, spec: WorkerSpec, workers: int | None, address: str | None = None, retries: int = 2):
        self.spec, self.workers, self.address, self.retries = spec, workers, address, retries
        self._connected_here = False
        self._actors: list = []

    def __enter__(self) -> "RayFleet":
        import_ray()
        import ray

        self._connected_here = connect_ray(self.address, self.workers)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if self.workers is not None and self.workers > cpus:
            # an actor that cannot be placed would hold its videos forever while the others sit idle
            log.warning(f"rtseg: batch: --workers {self.workers}, but the cluster has {cpus} CPU(s): {cpus} worker(s)")
        self.workers = min(self.workers or cpus, cpus)
        self._worker_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(VideoWorker)
        return self

    def __exit__(self, *exc) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors.clear()
        if self._connected_here:
            disconnect_ray()

    def _start_worker(self):
        actor = self._worker_class.remote(self.spec)
        self._actors.append(actor)
        return actor

    def _drop_worker(self, actor) -> None:
        import ray

        self._actors.remove(actor)
        ray.kill(actor)  # one presumed dead but only unreachable must not finish its video beside the retry

    def run(self, jobs: list[VideoJob]) -> Iterator[Progress | Retry | Outcome]:
        """Every job on the fleet; yields each video's events as they arrive, one `Outcome` per job."""
        import ray
        from ray.exceptions import RayActorError, RayError, RayTaskError

        assert self.workers is not None, "RayFleet.run inside `with RayFleet(...)`"  # __enter__ sets it
        pending = deque((job, 1) for job in jobs)
        idle = [self._start_worker() for _ in range(min(self.workers, len(jobs)))]
        running: dict = {}  # generator -> (actor, job, attempt)
        where: dict = {}  # key -> "pid N on HOST", from the video's last progress event
        ready: list[Any]  # the videos' ObjectRefGenerators (Ray types them ObjectRef | ObjectRefGenerator)
        while pending or running:
            while pending and idle:
                job, attempt = pending.popleft()
                actor = idle.pop()
                running[actor.process.remote(job, attempt)] = (actor, job, attempt)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for gen in ready:
                actor, job, attempt = running[gen]
                try:
                    event = ray.get(next(gen))
                except StopIteration:  # a generator that ended without its outcome: nothing was committed
                    event = Outcome(job.key, "failed", note="its worker ended without a result", attempt=attempt)
                except RayTaskError as e:  # process_video reports its own failures: this is around it
                    event = Outcome(job.key, "failed", note=_one_line(e), attempt=attempt)
                except RayError as e:  # the actor died, or its process, its node or the task's results were lost
                    del running[gen]
                    self._drop_worker(actor)
                    if isinstance(e, RayActorError) and e.actor_init_failed:
                        raise RtsegError(f"a Ray worker could not load model {self.spec.name}: {_one_line(e)}") from e
                    died = "died" if isinstance(e, RayActorError) else f"was lost ({type(e).__name__})"
                    reason = f"its worker ({where.get(job.key, 'not started')}) {died}"
                    if attempt <= self.retries:
                        pending.appendleft((job, attempt + 1))
                        yield Retry(job.key, attempt + 1, reason)
                    else:
                        yield Outcome(job.key, "failed", note=f"{reason}, {attempt} attempts in all", attempt=attempt)
                    if len(pending) > len(idle):  # the dead one's place, while there is work for it
                        idle.append(self._start_worker())
                    continue
                if isinstance(event, Progress):
                    where[job.key] = f"pid {event.pid} on {event.host}"
                if isinstance(event, Outcome):
                    del running[gen]
                    idle.append(actor)
                yield event
