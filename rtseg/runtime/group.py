"""Many sources through one loaded model, each in a pipeline and a thread of its own.

The model is loaded once; each source gets a slot of its own around that one backend (`ModelSlot.for_backend`),
because a slot's preprocessor holds the buffers frames are resized into and its pool bounds the frames in
flight: shared, one source's frames could be written over by another's, and a stalled source could hold the
pool the others need. ONNX Runtime sessions are thread-safe, so every pipeline's inference calls the same
session concurrently.

A source that stalls, reconnects or dies holds back no other. `rtseg run SRC1 SRC2 ...` (api/run_many.py) and
each camera actor of `rtseg serve --streams` (fleet/serve.py) run their sources through a `SourceGroup`:

    group = SourceGroup(settings, [NamedSource("rtsp://a"), NamedSource("rtsp://b")], live_view=True)
    group.load(choose)     # the model; with settings.choice.target_fps and no model, the one `choose` picks
    group.start()          # a thread per source
    ...                    # group.feeds(): each source's live view; group.stop() ends them all
    group.wait(); group.close()
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, cast

from ..core.errors import RtsegError
from ..core.redact import redact
from ..core.modelinfo import ModelInfo, resolve_model
from ..temporal import Temporal
from .outputs import SinkRequest, build_sinks
from .pipeline import Pipeline
from .settings import RunSettings
from .live_view import LiveFeed
from .slot import ModelSlot, load_slot
from .source_list import NamedSource
from .sources import CAMERA_URI, STREAM_SCHEMES, Source, open_input, unique_labels
from .stats import RunStats

log = logging.getLogger(__name__)

REOPEN_S = 5.0  # a live source that could not open at start is tried again this often (tolerant groups)


@dataclass(frozen=True)
class GroupChoice:
    """What a chooser made of a group's target_fps: the model and size to load first, why, and, when the rate is
    to be kept held, how to make the runner that switches the group's model around that first slot."""

    info: ModelInfo
    input_size: tuple[int, int] | None
    why: str | None = None
    runner: Callable[[ModelSlot], Any] | None = None


# Choosing a model for a rate is the selection floor's job, above this one: `SourceGroup.load` is handed the
# chooser (selection/group_adaptive.py's `choose_for_group`) and runs the model it returns.
GroupChooser = Callable[["SourceGroup"], GroupChoice]


@dataclass
class Lane:
    """One source's share of the group: its pipeline, its live view, and how it ended."""

    label: str
    uri: str
    source: Source | None = None
    pipeline: Pipeline | None = None
    feed: LiveFeed | None = None
    stats: RunStats | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def state(self) -> str:
        """connecting (not open yet: `error` says why), running, ended, lost, stopped or error."""
        if self.source is None:
            return "connecting"
        if self.error is not None:
            return "error"
        if self.stats is None:
            return "running" if self.pipeline is not None else "connecting"
        return "lost" if self.stats.source_lost else "stopped" if self.stats.interrupted else "ended"

    def code(self) -> int:
        """This source's exit status, by the rules of a one-source `rtseg run`."""
        return 1 if self.error is not None or self.stats is None else self.stats.exit_code

    def open(self, s: RunSettings, tolerant: bool) -> bool:
        """Open the source; a tolerant group keeps a live source that cannot open now as `error`, to retry."""
        try:
            self.source = open_input(self.uri, None, s.loop, s.frames, s.realtime, s.reconnect)
            self.error = None
            return True
        except RtsegError as e:
            if not (tolerant and is_live_uri(self.uri)):
                raise RtsegError(str(e) if redact(self.uri) in str(e) else f"source {redact(self.uri)}: {e}") from e
            self.error = e  # shown as this source's state until it opens
            return False

    def wire(self, slot: ModelSlot, info: ModelInfo, s: RunSettings, folder: Path | None, streams: int) -> None:
        """The lane's pipeline: `slot` (its own, around the group's backend), its own sinks (<label>.mp4 and
        .jsonl in `folder`, its live view) and its own key-frame state (its frames are its own sequence)."""
        assert self.source is not None, "only a lane whose source opened is wired"
        sinks = []
        if folder is not None:
            request = SinkRequest(
                output=str(folder / f"{self.label}.mp4"),
                json_lines=str(folder / f"{self.label}.jsonl") if s.sinks.json_lines else None,
                show=False,
                quiet=s.quiet,
                codec=s.sinks.codec,
                h264_preset=s.sinks.h264_preset,
            )
            sinks = build_sinks(request, self.source, info, lambda: None)  # no window: nothing asks to stop
        if self.feed is not None:
            sinks.append(self.feed)
        temporal = Temporal(s.choice.temporal) if s.choice.temporal.active else None
        self.pipeline = Pipeline(self.source, slot, sinks, queue_size=s.queue_size, streams=streams, temporal=temporal)
        if self.feed is not None:
            self.feed.meta["state"] = "running"

    def start(self) -> None:
        """The lane's pipeline in a thread of its own; its failure is kept with it, the others go on."""

        def run() -> None:
            try:
                self.stats = cast(Pipeline, self.pipeline).run(handle_signals=False)  # started once wired
            except BaseException as e:
                self.error = e
            if self.feed is not None:
                self.feed.meta.update(state=self.state, error=str(self.error) if self.error else None)

        self.thread = threading.Thread(target=run, name=f"source-{self.label}", daemon=True)
        self.thread.start()

    def close_unrun(self) -> None:
        """What a lane that never ran still holds: its source, the sinks of a pipeline wired but not started,
        its live view."""
        if self.pipeline is None and self.source is not None:
            self.source.close()
        elif self.pipeline is not None and self.thread is None:
            for sink in self.pipeline.sinks:
                sink.close()
            cast(Source, self.source).close()  # a wired lane has its source
        if self.feed is not None:
            self.feed.close()


# -- labels ------------------------------------------------------------------------------------------
def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "source"


def source_labels(sources: Sequence[str | NamedSource]) -> list[str]:
    """A name per source for its output files and its page, unique in the run: the label a source list gave,
    else files by `unique_labels` (the stem, widened where stems repeat), cameras as cam<N>, URLs as
    host_port_path (`127.0.0.1_8080_cam`)."""
    named = [s if isinstance(s, NamedSource) else NamedSource(s) for s in sources]
    labels: list[str | None] = [s.label for s in named]
    given = [x for x in labels if x is not None]
    if len(given) != len(set(given)):  # two lists naming a source alike: their outputs would overwrite each other
        twice = sorted({x for x in given if given.count(x) > 1})
        raise RtsegError(f"label(s) {', '.join(twice)} given to more than one source")
    files = []
    for i, s in enumerate(named):
        if labels[i] is not None:
            continue
        if m := CAMERA_URI.fullmatch(s.uri):
            labels[i] = f"cam{m.group(1) or m.group(2)}"
        elif s.uri.startswith(STREAM_SCHEMES):
            rest = redact(s.uri).split("://", 1)[1].split("?", 1)[0]  # a label is shown: no password in it
            labels[i] = _sanitize(os.path.splitext(rest)[0].replace(":", "_").replace("/", "_"))
        else:
            files.append(i)
    for i, label in zip(files, unique_labels([Path(named[i].uri) for i in files])):
        labels[i] = _sanitize(label)  # a glob's stem ('*') is no file name
    out, taken = [], {s.label for s in named if s.label}
    # every label is set by now; the same camera or URL twice, or a file named like a camera's label, is numbered
    for s, label in zip(named, cast(list[str], labels)):
        if s.label is not None:
            out.append(label)
            continue
        name, n = label, 2
        while name in taken:
            name, n = f"{label}_{n}", n + 1
        taken.add(name)
        out.append(name)
    return out


def is_live_uri(uri: str) -> bool:
    return uri.startswith(STREAM_SCHEMES) or bool(CAMERA_URI.fullmatch(uri)) or uri.startswith("/dev/video")


class SourceGroup:
    """Sources opened, one model for them, a pipeline and a thread per source; see the module docstring.

    `folder`: each source's overlay (and JSON lines) as <label>.mp4 / <label>.jsonl there. `live_view`: a
    `LiveFeed` per source, for one HTTP server over them all. `tolerant`: a live source that cannot be
    opened now is tried again every REOPEN_S instead of refusing the group (a camera fleet starts with some
    cameras down); without it every source must open, and one that cannot is refused by name.
    """

    def __init__(
        self,
        settings: RunSettings,
        sources: list[NamedSource],
        folder: Path | None = None,
        live_view: bool = False,
        tolerant: bool = False,
        view_fps: float = 15.0,
    ):
        self.settings, self.folder, self.tolerant = settings, folder, tolerant
        self.slot: ModelSlot | None = None
        self.streams = self.threads = 1
        self.why: str | None = None
        self.runner = None  # the group's selector, when it keeps target_fps held (GroupAdaptiveRunner)
        self.stopping = threading.Event()
        # wiring and starting a lane, against stopping and closing: the reopener wires lanes while others run
        self.wiring = threading.Lock()
        self._reopener: threading.Thread | None = None
        self.lanes = [
            Lane(label, s.uri, feed=LiveFeed(max_fps=view_fps, meta={"source": redact(s.uri)}) if live_view else None)
            for s, label in zip(sources, source_labels(sources))
        ]
        try:
            for lane in self.lanes:
                lane.open(settings, tolerant)
        except BaseException:
            self.close()
            raise

    # -- the model -------------------------------------------------------------------------------------
    def load(self, choose: GroupChooser | None = None) -> ModelSlot:
        """The group's one model (named, or the one `choose` picks for target_fps: the most accurate that holds
        it on every source), and a pipeline for each source that is open."""
        s, n = self.settings, len(self.lanes)
        # inference in parallel across sources already: one stream each, the cores shared out between them
        self.streams = s.streams or 1
        self.threads = s.threads or max(1, (s.cores or os.cpu_count() or 1) // (n * self.streams))
        size, choice = s.choice.input_size, None
        if s.choice.selects:
            if choose is None:
                raise RtsegError("a group with target_fps and no model needs a chooser (selection.group_adaptive)")
            choice = choose(self)
            info, size, self.why = choice.info, choice.input_size, choice.why
        else:
            info = resolve_model(s.choice.model)
        self.slot = self.load_model(info, size)
        if choice is not None and choice.runner is not None:
            self.runner = choice.runner(self.slot)
        for lane in self.lanes:
            if lane.source is not None:
                self.wire(lane)
        return self.slot

    def _pool(self) -> int:
        return self.settings.queue_size + self.streams + 2

    def load_model(self, info, size: tuple[int, int] | None) -> ModelSlot:
        """A model's first slot (its backend loaded), as every source of the group runs it."""
        s, c = self.settings, self.settings.choice
        return load_slot(
            info,
            s.backend.name,
            threads=self.threads,
            input_size=size,
            alpha=c.alpha,
            score_threshold=c.score_threshold,
            legend=c.legend,
            pool_size=self._pool(),
            **s.backend.options(),
        )

    def slot_around(self, first: ModelSlot) -> ModelSlot:
        """Another source's slot around a loaded model: its own buffers and pool, the same backend."""
        c = self.settings.choice
        return ModelSlot.for_backend(first.info, first.backend, first.input_size, c.alpha, c.score_threshold, self._pool(), c.legend)

    def wire(self, lane: Lane) -> None:
        """A pipeline for the lane: its own slot around the current model (which may not be the first any more)."""
        if self.runner is not None:
            first, slot = self.runner.current, self.runner.slot_for(lane.label)
        else:
            first = cast(ModelSlot, self.slot)  # lanes are wired once `load` has loaded it
            uses = any(x.pipeline is not None and x.pipeline.slot is first for x in self.lanes)
            slot = self.slot_around(first) if uses else first
        lane.wire(slot, first.info, self.settings, self.folder, self.streams)
        if self.runner is not None:
            self.runner.attach(lane.label, lane.pipeline)

    # -- running ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """A thread per open source; a tolerant group also starts trying the others again."""
        for lane in self.lanes:
            if lane.pipeline is not None:
                lane.start()
            elif lane.feed is not None:
                lane.feed.meta.update(state="connecting", error=str(lane.error))
        if any(lane.source is None for lane in self.lanes):
            self._reopener = threading.Thread(target=reopen_lanes, args=(self,), name="group-reopen", daemon=True)
            self._reopener.start()

    def running(self) -> bool:
        return any(lane.thread is not None and lane.thread.is_alive() for lane in self.lanes) or (
            self._reopener is not None and self._reopener.is_alive()
        )

    def stop(self) -> None:
        """Every source stops reading; frames already read are still processed and written."""
        self._halt(Pipeline.stop)

    def abort(self) -> None:
        """Every pipeline stops at once (a second Ctrl-C); outputs are still closed."""
        self._halt(Pipeline.abort)

    def _halt(self, how) -> None:
        with self.wiring:  # no lane is wired meanwhile: one the reopener starts later sees `stopping` first
            self.stopping.set()
            for lane in self.lanes:
                if lane.pipeline is not None:
                    how(lane.pipeline)

    def wait(self, timeout: float | None = None) -> bool:
        """Until every source has ended (True), or `timeout` seconds (False). The reopener is waited for
        first: it may start a lane until it ends."""
        end = None if timeout is None else time.monotonic() + timeout

        def joined(t: threading.Thread | None) -> bool:
            if t is not None:
                t.join(None if end is None else max(0.0, end - time.monotonic()))
            return t is None or not t.is_alive()

        return joined(self._reopener) and all([joined(lane.thread) for lane in self.lanes])

    def finish(self, timeout: float = 10.0) -> None:
        """Stop every source and wait for them; those that have not drained within `timeout` are aborted."""
        self.stop()
        if not self.wait(timeout):
            self.abort()
            self.wait(timeout)

    def feeds(self) -> dict[str, LiveFeed]:
        return {lane.label: lane.feed for lane in self.lanes if lane.feed is not None}

    def close(self) -> None:
        """Whatever is still open: sources that never ran, sinks of pipelines that never ran, the feeds, the
        model (once every pipeline is done with it)."""
        self.stopping.set()
        if self._reopener is not None:
            self._reopener.join(timeout=5)  # it wires no lane once stopping is set; an open under way ends by itself
        running = [lane.thread for lane in self.lanes if lane.thread is not None and lane.thread.is_alive()]
        if running:  # the model is closed below: nothing may still infer with it
            self.abort()
            for t in running:
                t.join(timeout=10)
        for lane in self.lanes:
            lane.close_unrun()
        if self.runner is not None:  # every model it loaded, the first one included
            self.runner.close()
        elif self.slot is not None:
            self.slot.close()
        self.slot = None


def reopen_lanes(group: "SourceGroup") -> None:
    """A tolerant group's retries (its own thread): every REOPEN_S, each source that could not open is tried
    again, and one that opens is wired and started like the others; a stop ends the retries."""
    while not group.stopping.wait(REOPEN_S):
        waiting = [lane for lane in group.lanes if lane.source is None]
        if not waiting:
            return
        for lane in waiting:
            if group.stopping.is_set():
                return
            try:
                opened = lane.open(group.settings, group.tolerant)  # seconds, maybe (a connect timeout): not under the lock
                with group.wiring:
                    if opened and group.stopping.is_set():  # stopped meanwhile: this one never starts
                        cast(Source, lane.source).close()  # `open` said it opened
                        return
                    if opened:
                        group.wire(lane)
                        lane.start()
            except Exception as e:  # one source's surprise must not end the retries of the others
                log.debug(f"rtseg: source {lane.label}: reopening failed ({e})")
                lane.error = e
                continue
            if opened:
                log.info(f"rtseg: source {lane.label} ({redact(lane.uri)}) opened")
            elif lane.feed is not None:
                lane.feed.meta["error"] = redact(str(lane.error))
