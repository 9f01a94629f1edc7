"""The selector's controller for many sources sharing one model: every source held at the target together.

`SourceGroup` runs one model for all its sources (api/run_many.py, fleet/serve.py). With `--target-fps F` the
controller watches the slowest source (its output FPS for files, its pipeline's capacity for live sources,
whose output rate the camera caps) and moves the whole group along the Pareto front: the next model is
loaded once, in a background thread while the current one keeps running, and every source then gets a slot
of its own around it (`ModelSlot.for_backend`, as at start); loaded models are kept, so switching back costs
nothing. The controller's hysteresis, dwell and back-off are the one-source selector's (`Controller`).

`choose_for_group` is the group's model choice, handed to `SourceGroup.load`: the runtime runs models, this
floor chooses them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Callable

from ..runtime.frame import FrameRecord
from ..runtime.group import GroupChoice
from ..runtime.slot import ModelSlot
from ..runtime.stats import RateMeter
from .adaptive import load_kept, switch_event
from .start import select_for_rate
from .ladder import Candidate, Controller

if TYPE_CHECKING:
    from ..runtime.group import SourceGroup
    from ..runtime.pipeline import Pipeline

log = logging.getLogger(__name__)


def choose_for_group(group: SourceGroup) -> GroupChoice:
    """`SourceGroup.load`'s chooser: the most accurate model that holds the group's target_fps on every one of
    its sources (their streams and threads, the cores shared out), and with `adapt`, the runner that keeps that
    rate held by moving the whole group along the ladder."""
    s = group.settings.choice
    assert s.target_fps is not None, "SourceGroup.load asks a chooser only for a rate"
    target_fps = s.target_fps  # as narrowed here, for the runner below
    sel = select_for_rate(
        s.target_fps,
        s.task,
        group.settings.backend.name,
        group.streams,
        group.threads,
        s.margin,
        s.max_latency,
        s.rank_by,
        sources=len(group.lanes),
        cores=group.settings.cores,
        keyframes=False,
    )
    info = sel.choice.info
    assert info is not None  # select_for_rate's candidates are built from models
    if not (s.adapt and len(sel.ladder) > 1):
        return GroupChoice(info, sel.choice.input_size, sel.why)

    def runner(first: ModelSlot) -> GroupAdaptiveRunner:
        return GroupAdaptiveRunner(
            Controller(sel.ladder, sel.index, target_fps),
            first,
            lambda c: group.load_model(c.info, c.input_size),
            group.slot_around,
            group.streams,
        )

    return GroupChoice(info, sel.choice.input_size, sel.why, runner)


class GroupAdaptiveRunner:
    """Decides from every source's frames, switches every source; see the module docstring.

    `load(candidate)` loads a model's first slot (its backend); `around(slot)` makes another source's slot
    around that backend. Sources join with `attach(label, pipeline)`, before or while running.
    """

    def __init__(
        self,
        controller: Controller,
        first: ModelSlot,
        load: Callable[[Candidate], ModelSlot],
        around: Callable[[ModelSlot], ModelSlot],
        streams: int = 1,
    ):
        self.controller, self.load, self.around, self.streams = controller, load, around, streams
        self.clock = controller.clock
        self.current = first  # the current model's first slot
        self.loaded: dict[str, ModelSlot] = {first.name: first}  # by variant name: kept, switching back is free
        self.switches: list[dict] = []
        self.t0 = self.clock()
        self._lock = threading.RLock()  # sources join (slot_for, attach) from other threads while a switch runs
        self._pipelines: dict[str, Pipeline] = {}
        self._slots: dict[tuple[str, str], ModelSlot] = {}  # (model, source) -> that source's slot
        self._meters: dict[str, RateMeter] = {}
        self._infer_ms: dict[str, deque] = {}
        self._last_frame: dict[str, float] = {}
        self._live: dict[str, bool] = {}

    def slot_for(self, label: str) -> ModelSlot:
        """The source's slot around the current model: the first slot for the first source, then its own."""
        with self._lock:
            key = (self.current.name, label)
            if key not in self._slots:
                taken = any(m == self.current.name for m, _ in self._slots)
                self._slots[key] = self.around(self.current) if taken else self.current
            return self._slots[key]

    def attach(self, label: str, pipeline) -> None:
        with self._lock:
            self._pipelines[label] = pipeline
            self._live[label] = pipeline.live
            self._reset(label)
            if pipeline.slot is not self.slot_for(label):  # a switch came between its wiring and now
                pipeline.switch_to(self.slot_for(label))
        pipeline.on_frame = lambda rec: self.on_frame(label, rec)

    def _reset(self, label: str) -> None:
        self._meters[label] = RateMeter(self.controller.cfg.window_s)
        self._infer_ms[label] = deque(maxlen=30)

    def rate(self, now: float) -> float | None:
        """The slowest source's rate among those that gave a frame within the window (a source that ended
        or is reconnecting does not hold the others down); None before any has. A file's rate is its output
        FPS, a live source's its pipeline's capacity (the camera caps its output)."""
        rates = []
        for k, t in self._last_frame.items():
            if now - t > 2 * self.controller.cfg.window_s:
                continue
            if not self._live[k]:
                rates.append(self._meters[k].fps)
            elif self._infer_ms[k]:
                rates.append(self.streams * 1000.0 / (sum(self._infer_ms[k]) / len(self._infer_ms[k])))
        return min(rates) if rates else None

    def on_frame(self, label: str, rec: FrameRecord) -> None:
        with self._lock:
            if rec.slot is not self._slots.get((self.current.name, label)):
                return  # a frame of the previous model, still draining after a switch
            now = self.clock()
            self._meters[label].tick(now)
            self._infer_ms[label].append(rec.ms.get("infer", 0.0))
            self._last_frame[label] = now
            rate = self.rate(now)
            index = None if rate is None else self.controller.observe(rate)
        if index is not None:
            threading.Thread(target=self._switch, args=(index, rate, rec.index), daemon=True, name="model-loader").start()

    def _switch(self, index: int, rate: float, frame: int) -> None:
        cand = self.controller.ladder[index]
        old, old_index = self.current.name, self.controller.index
        try:
            first = load_kept(self.loaded, cand, self.load)
        except Exception as e:  # a model that cannot load is skipped, the sources go on
            log.info(f"rtseg: could not load {cand.name} ({e}); staying on {old}")
            with self._lock:
                self.controller.switched(self.controller.index)
            return
        with self._lock:
            self.current = first
            for label, pipeline in self._pipelines.items():
                pipeline.switch_to(self.slot_for(label))
                self._reset(label)
            self._last_frame.clear()
            self.controller.switched(index)
        event = switch_event(self.clock() - self.t0, frame, old, cand.name, index > old_index, rate, self.controller.target) | {
            "sources": len(self._pipelines)
        }
        self.switches.append(event)
        log.info(
            f"rtseg: {event['t']:.1f}s step {event['direction']}: {old} -> {cand.name} for all "
            f"{event['sources']} sources (slowest at {rate:.1f} FPS, target {event['target']:g})"
        )

    def close(self) -> None:
        """Every model it loaded (each backend once: the other sources' slots only wrap it)."""
        for slot in self.loaded.values():
            slot.close()
        self.loaded.clear()
