"""`rtseg serve --streams FILE`: many live cameras over Ray actors (or this process), watched through one server.

The cameras are dealt out round-robin to camera actors, one per CPU slot (`--cpus-per-worker`, default 1)
up to `--workers`; each actor runs the many-sources pipeline (`runtime.group.SourceGroup`) over its own
cameras, with one model loaded, chosen by its own selector for `--target-fps` when asked. The command
itself holds no frames: it serves the pages and numbers of every camera (`runtime.http_view`, the same pages
as `rtseg run SRC1 SRC2 --serve`) and asks the actors for them through Ray (`RayHub`), so a browser needs to
reach only this machine, not every node.

A camera actor that dies (its process killed, its node lost, out of memory) is restarted by Ray
(`max_restarts`, forever by default), which runs its constructor again with the same cameras: they
resume, under the same labels, on the same page. Until then the page and /stats.json show those cameras as
restarting, and count the restarts. A camera that is down when its actor starts is tried again every few
seconds (`SourceGroup(tolerant=True)`); one that drops while running reconnects (`--reconnect`, forever by
default). (Ray's docs: ray-core/fault_tolerance/actors, ray-core/actors/async_api "threaded actors".)

Without Ray (`--no-ray`, or Ray not installed) every camera runs in this process, behind the same server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.errors import RtsegError
from ..runtime.group import SourceGroup, source_labels
from ..core.redact import redact
from ..runtime.http_access import ServeAccess
from ..runtime.http_view import FeedHub, LiveServer, combine
from ..runtime.settings import RunSettings
from ..runtime.source_list import NamedSource, read_source_list
from ..selection.group_adaptive import choose_for_group

log = logging.getLogger(__name__)

STARTUP_S = 300.0  # a camera actor that has not loaded its model by then is reported as failing to start
ASK_S = 2.0  # one question to an actor (its numbers, a frame) waits this long at most
COUNTS = ("frames_in", "frames_out", "dropped")  # counted across a camera's restarts
CONCURRENCY = 32  # threads of a camera actor: each MJPEG viewer holds one while it waits for a frame


@dataclass(frozen=True)
class ServeRequest:
    """Everything `rtseg serve` was asked to do."""

    streams: str  # the source list (.txt or .toml)
    settings: RunSettings  # the model (or the rate to choose one for) and each source's wrapping
    listen: str = "127.0.0.1:8080"
    ray_address: str | None = None
    no_ray: bool = False
    workers: int | None = None  # camera actors; default: one per cpus_per_worker CPUs, up to one per camera
    cpus_per_worker: int = 1
    max_restarts: int = -1  # Ray restarts a dead camera actor this often (-1: forever)
    duration: float | None = None  # stop after this many seconds (default: at Ctrl-C / SIGTERM)
    view_fps: float = 15.0  # the live view's JPEG rate per camera, at most
    backend_why: str | None = None  # why `--backend auto` chose the backend: said once the plan stands
    stats: str | None = None  # the last numbers of every camera, as JSON, when it stops
    access: ServeAccess | None = None  # the server's token and extra Host names (runtime/http_access.py)


# -- a camera actor ----------------------------------------------------------------------------------
class CameraGroup:
    """The body of a camera actor: its cameras through one model, and their live views for the server."""

    def __init__(self, settings: RunSettings, sources: list[NamedSource], view_fps: float = 15.0):
        self.group = SourceGroup(settings, sources, live_view=True, tolerant=True, view_fps=view_fps)
        try:
            self.group.load(choose_for_group)
            self.group.start()
        except BaseException:
            self.group.close()
            raise
        self.worker = {"pid": os.getpid(), "host": socket.gethostname(), "since": round(time.time(), 3)}
        self.feeds = self.group.feeds()

    def describe(self) -> dict:
        slot = self.group.slot
        assert slot is not None, "the constructor loaded the model"
        return {
            "model": slot.name,
            "size": list(slot.input_size),
            "backend": slot.backend.name,
            "why": self.group.why,
            "threads": self.group.threads,
            "labels": [lane.label for lane in self.group.lanes],
            **self.worker,
        }

    def stats(self) -> dict[str, dict]:
        return {label: feed.stats() | {"worker": self.worker} for label, feed in self.feeds.items()}

    def single_jpeg(self, label: str) -> bytes | None:
        return self.feeds[label].single_jpeg()

    def newest_jpeg(self, label: str, after: int, timeout: float = 1.0) -> tuple[bytes | None, int, bool]:
        """The feed's newest JPEG after `after` (as `LiveFeed.newest_jpeg`), and whether the feed has closed
        (its camera ended: no JPEG will come, the viewer's stream ends)."""
        feed = self.feeds[label]
        feed.lease(timeout + ASK_S)  # the server's viewer is in another process: it renews this with each ask
        jpeg, seq = feed.newest_jpeg(after, timeout)
        return jpeg, seq, feed.closing

    def stop(self, timeout: float = 10.0) -> None:
        """Every camera stopped and drained (aborted past `timeout`); its numbers stay readable."""
        self.group.finish(timeout)

    def close(self) -> None:
        self.group.close()


# -- the server's side -------------------------------------------------------------------------------
def _one_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return redact(lines[-1]) if lines else type(e).__name__


class RemoteFeed:
    """One camera's live view in a camera actor, as the server's pages want it (`http_view.Feed`)."""

    def __init__(self, hub: "RayHub", index: int, label: str):
        self.hub, self.index, self.label = hub, index, label
        self.closing = False  # the camera ended (a file's end, a lost source): the server's stream loop stops

    def _ask(self, method: str, *args, timeout: float = ASK_S):
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        try:
            return ray.get(getattr(self.hub.actors[self.index], method).remote(self.label, *args), timeout=timeout)
        except (RayError, GetTimeoutError):  # restarting, or not answering: the page shows it from /stats.json
            return None

    def stats(self) -> dict:
        return self.hub.stats()["sources"][self.label]

    def single_jpeg(self) -> bytes | None:
        return self._ask("single_jpeg")

    def newest_jpeg(self, after: int, timeout: float = 1.0) -> tuple[bytes | None, int]:
        got = self._ask("newest_jpeg", after, timeout, timeout=timeout + ASK_S)
        if got is None:
            time.sleep(0.5)  # the actor is restarting: ask again soon, without spinning
            return None, after
        jpeg, seq, self.closing = got
        return jpeg, seq

    def watching(self, delta: int) -> None:
        """Counted in the actor by its lease, renewed with every frame asked for."""


class RayHub:
    """Every camera actor's cameras, as one hub for the server: numbers gathered from all actors at once (and
    kept for a moment, so many pages asking cost one round), a camera's frames from the actor that runs it,
    and each actor's restarts counted (its worker, host + pid + start time, changes)."""

    single = False
    FRESH_S = 0.25

    def __init__(
        self, actors: list, labels: list[list[str]], order: list[str], described: list[dict] | None = None, restartable: bool = True
    ):
        self.actors, self.labels, self.order, self.restartable = actors, labels, order, restartable
        self.restarts = [0] * len(actors)
        # who each actor was when it said so last: a restart before the first question still counts
        self._who: list[tuple | None] = [_identity(d) for d in described] if described else [None] * len(actors)
        self._last: dict[str, dict] = {}
        self._carried: dict[str, dict] = {}  # counts of a camera's earlier workers: a restart starts from 0
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None
        self._feeds = {label: RemoteFeed(self, i, label) for i, group in enumerate(labels) for label in group}

    def feed(self, label: str) -> RemoteFeed | None:
        return self._feeds.get(label)

    def stats(self) -> dict:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.FRESH_S:
                return self._cached[1]
            doc = self._gather()
            self._cached = (time.monotonic(), doc)
            return doc

    def _gather(self) -> dict:
        import ray
        from ray.exceptions import RayActorError, RayError, RayTaskError

        refs = [actor.stats.remote() for actor in self.actors]
        ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=ASK_S)
        for ref in waiting:  # a slow actor is not left a queue of questions nobody waits for
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        per: dict[str, dict] = {}
        for i, ref in enumerate(refs):
            state, error, got = "not answering", None, None
            if ref in ready:
                try:
                    got = ray.get(ref)
                except RayTaskError as e:  # the actor's own method failed: the actor itself is up
                    state, error = "error", _one_line(e)
                except RayActorError as e:  # its process died: Ray restarts it, unless restarts are spent
                    state, error = ("restarting" if self.restartable else "dead"), _one_line(e)
                except RayError as e:
                    error = _one_line(e)
            if got:
                who = _identity(next(iter(got.values()))["worker"])
                if self._who[i] is not None and who != self._who[i]:
                    self.restarts[i] += 1  # Ray restarted the actor: its constructor reopened the cameras
                    for label in self.labels[i]:  # the totals said last (earlier workers' counts in them)
                        self._carried[label] = {k: self._last.get(label, {}).get(k) or 0 for k in COUNTS}
                self._who[i] = who
                for label, numbers in got.items():
                    kept = self._carried.get(label, {})
                    counts = {k: (numbers.get(k) or 0) + kept.get(k, 0) for k in COUNTS}
                    per[label] = self._last[label] = numbers | counts | {"restarts": self.restarts[i], "worker_index": i}
                continue
            for label in self.labels[i]:  # what it said last, marked with why it says nothing now
                per[label] = {
                    **self._last.get(label, {}),
                    "fps": 0.0,
                    "state": state,
                    "error": error,
                    "restarts": self.restarts[i],
                    "worker_index": i,
                }
        return combine({label: per[label] for label in self.order if label in per})


def _identity(worker: dict) -> tuple:
    return worker.get("host"), worker.get("pid"), worker.get("since")


# -- the command -------------------------------------------------------------------------------------
def deal(sources: list[NamedSource], workers: int) -> list[list[NamedSource]]:
    """Sources dealt out round-robin to `workers` groups (none left empty)."""
    groups = [sources[i::workers] for i in range(min(workers, len(sources)))]
    return [g for g in groups if g]


def labels_of(sources: list[NamedSource]) -> list[str]:
    """The labels of sources `labelled` named (it names every one)."""
    labels = []
    for s in sources:
        assert s.label is not None, "labelled() gives every source its label"
        labels.append(s.label)
    return labels


def labelled(path: str) -> list[NamedSource]:
    """The list's sources, each with the label it has across the whole fleet (unique over every actor)."""
    sources = read_source_list(path)
    return [NamedSource(s.uri, label) for s, label in zip(sources, source_labels(sources))]


class StopSignals:
    """Ctrl-C / SIGTERM for the whole command: the first ends `wait`, a second calls `hurry` (abort what is
    still draining), so no signal lands in the middle of shutting down as a KeyboardInterrupt."""

    def __init__(self):
        self.got: list[int] = []
        self.hurry = lambda: None
        self._event = threading.Event()
        self._old: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._on) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def _on(self, signum, _frame) -> None:
        self.got.append(signum)
        if len(self.got) > 1:
            self.hurry()
        self._event.set()

    def wait(self, duration: float | None) -> int | None:
        """Until the first signal (returns it) or `duration` seconds (None)."""
        self._event.wait(duration)
        return self.got[0] if self.got else None


def summarize(final: dict, stats_path: str | None = None) -> None:
    """The last numbers of every camera, a line each, and in `stats_path` as JSON (/stats.json's form)."""
    if stats_path:
        Path(stats_path).write_text(json.dumps(final, indent=2) + "\n")
    for label, s in final["sources"].items():
        where = f", worker {s['worker']['pid']} on {s['worker']['host']}" if s.get("worker") else ""
        restarts = f", {s['restarts']} restart(s)" if s.get("restarts") else ""
        log.info(
            f"{label} ({s.get('source', '?')}): {s.get('state', '?')}, frames in {s.get('frames_in') or 0}, "
            f"out {s.get('frames_out') or 0}, dropped {s.get('dropped') or 0}{restarts}{where}"
        )
    log.info(f"all {final['source_count']} sources: frames out {final['frames_out']:.0f}, dropped {final['dropped']:.0f}")


def serve_local(request: ServeRequest, sources: list[NamedSource]) -> int:
    """Every camera in this process, behind the server."""
    server = LiveServer(request.listen, FeedHub({}), "--listen", request.access)  # a port in use: said before any work
    group = None
    with StopSignals() as signals:
        try:
            group = SourceGroup(request.settings, sources, live_view=True, tolerant=True, view_fps=request.view_fps)
            slot = group.load(choose_for_group)
            server.hub = FeedHub(group.feeds())
            if group.why:
                log.info(f"rtseg: selector: {group.why}")
            log.info(
                f"rtseg: serving {len(sources)} stream(s) in this process with {slot.name} ({slot.backend.name}, "
                f"{group.threads} thread(s) each) on {server.url}"
            )
            group.start()
            signals.hurry = group.abort
            signum = signals.wait(request.duration)
            group.finish()
            final = server.hub.stats()  # after the drain: every frame the cameras sent is counted
        finally:
            server.close()
            if group is not None:
                group.close()
    summarize(final, request.stats)
    return 128 + signum if signum else 0


def serve_on_ray(request: ServeRequest, sources: list[NamedSource]) -> int:
    """The cameras over camera actors on Ray, behind the server in this process."""
    from .ray_fleet import connect_ray, disconnect_ray, import_ray

    import_ray()
    import ray
    from ray.exceptions import RayActorError, RayError

    per = request.cpus_per_worker
    here = max(1, (os.cpu_count() or 1) // per)  # workers a local cluster of this machine's cores holds
    wanted = request.workers or (None if request.ray_address else min(len(sources), here))
    # the address first: a port in use is said before minutes of starting workers (no cameras until they run)
    server = LiveServer(request.listen, FeedHub({}), "--listen", request.access)
    actors: list = []
    connected = False
    with StopSignals() as signals:
        try:
            connected = connect_ray(request.ray_address, None if wanted is None else wanted * per)
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            slots = max(1, cpus // per)
            workers = min(wanted or slots, slots, len(sources))
            if request.workers and request.workers > workers:
                log.warning(
                    f"rtseg: serve: --workers {request.workers}, but the cluster has {cpus} CPU(s) for {per} each: {workers} worker(s)"
                )
            groups = deal(sources, workers)
            # SPREAD: the workers over as many nodes as have room, so a lost node takes the fewest cameras with it
            # max_concurrency makes a threaded actor (Ray's docs: actors/async_api); Ray's overloads of `remote` omit it
            actor_class = ray.remote(
                num_cpus=per,
                max_restarts=request.max_restarts,
                max_task_retries=0,  # type: ignore[call-overload]
                max_concurrency=CONCURRENCY,
                scheduling_strategy="SPREAD",
            )(CameraGroup)
            for group in groups:
                # the actor's cores are its CPUs, not its node's: threads and the selector's budget follow them
                settings = replace(request.settings, cores=per, threads=request.settings.threads or max(1, per // len(group)))
                actors.append(actor_class.remote(settings, group, request.view_fps))
            try:
                described = ray.get([a.describe.remote() for a in actors], timeout=STARTUP_S)
            except RayActorError as e:
                raise RtsegError(f"a camera worker could not start: {_one_line(e)}") from e
            except RayError as e:
                raise RtsegError(f"camera workers did not start within {STARTUP_S:.0f} s: {_one_line(e)}") from e
            for d in described:
                log.info(
                    f"rtseg: worker {d['pid']} on {d['host']}: {', '.join(d['labels'])} with {d['model']} "
                    f"({d['backend']}, {d['threads']} thread(s) each)" + (f"; selector: {d['why']}" if d['why'] else "")
                )
            hub = server.hub = RayHub(
                actors, [labels_of(g) for g in groups], labels_of(sources), described, restartable=request.max_restarts != 0
            )
            where = f"Ray at {request.ray_address}" if request.ray_address else "a local Ray cluster"
            log.info(f"rtseg: serving {len(sources)} stream(s) on {len(actors)} worker(s) on {where}, on {server.url}")
            signum = signals.wait(request.duration)
            with contextlib.suppress(RayError):  # each actor drains its cameras; one that does not answer is killed
                ray.get([a.stop.remote() for a in actors], timeout=20)
            hub.FRESH_S = 0.0
            final = hub.stats()  # after the drain: every frame the cameras sent is counted
            with contextlib.suppress(RayError):
                ray.get([a.close.remote() for a in actors], timeout=20)
        finally:
            server.close()
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if connected:
                disconnect_ray()
    summarize(final, request.stats)
    return 128 + signum if signum else 0


def serve_command(request: ServeRequest) -> int:
    """`rtseg serve --streams FILE`: returns 128 + the signal that stopped it, or 0 after --duration."""
    from .batch import ray_installed

    sources = labelled(request.streams)
    if request.stats:
        from ..runtime.sinks import require_writable

        require_writable(Path(request.stats), "--stats")
    on_ray = not request.no_ray and ray_installed()
    if request.no_ray and (request.ray_address or request.workers):
        raise RtsegError("--no-ray runs every stream in this process: it takes no --ray-address or --workers")
    if not request.no_ray and not on_ray and (request.ray_address or request.workers):
        raise RtsegError("--ray-address and --workers need Ray: pip install 'rtseg[ray]' (or --no-ray)")
    if request.backend_why:
        log.info(f"rtseg: backend auto: {request.backend_why}")
    if request.no_ray:
        return serve_local(request, sources)
    if not on_ray:
        log.info("rtseg: Ray is not installed: every stream in this process (pip install 'rtseg[ray]' to spread them)")
        return serve_local(request, sources)
    return serve_on_ray(request, sources)
