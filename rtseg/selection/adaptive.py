"""Runs the selector's controller inside a pipeline: measure, decide, load the next model aside, switch.

The next model is loaded and warmed up in a background thread while the current one keeps running, so
a switch never stalls the stream; loaded models are kept, so switching back costs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, cast

from ..runtime.frame import FrameRecord
from ..runtime.pipeline import Pipeline
from .ladder import Candidate, Controller
from ..runtime.slot import ModelSlot
from ..runtime.stats import RateMeter

log = logging.getLogger(__name__)


def load_kept(loaded: dict[str, ModelSlot], cand: Candidate, load: Callable[[Candidate], ModelSlot]) -> ModelSlot:
    """The candidate's slot: the one loaded before, or loaded and warmed up now and kept (switching back is free).
    Rungs of one model at one size share a slot: only their key-frame interval differs."""
    slot = loaded.get(cand.variant)
    if slot is None:
        slot = load(cand)
        slot.warm_up()
        loaded[cand.variant] = slot
    return slot


def switch_event(t: float, frame: int, old: str, new: str, up: bool, rate: float, target: float) -> dict:
    """A switch as the stats, the JSON lines and the live view record it."""
    return {
        "t": round(t, 2),
        "frame": frame,
        "from": old,
        "to": new,
        "direction": "up" if up else "down",
        "rate": round(rate, 1),
        "target": target,
    }


class AdaptiveRunner:
    def __init__(self, pipeline: Pipeline, controller: Controller, load: Callable[[Candidate], ModelSlot], live: bool, streams: int):
        self.pipeline, self.controller, self.load = pipeline, controller, load
        self.live, self.streams = live, streams
        self.clock = controller.clock
        self.meter = RateMeter(controller.cfg.window_s)
        self.infer_ms: deque[float] = deque(maxlen=30)  # inference ms of recent frames that ran the model
        self.inferred: deque[bool] = deque(maxlen=30)  # whether each recent frame ran it (key frames)
        self.slots: dict[str, ModelSlot] = {pipeline.slot.name: pipeline.slot}  # by variant name
        self.switches: list[dict] = []
        self.t0 = self.clock()
        # what each model achieved, kept by the sink thread alone: a model's time runs from its first frame
        # out (not from the switch, while the previous model's frames still drain) to its last
        self._segment: list | None = None  # [model, first frame's time, last frame's time, frames]
        self._observed: dict[str, list[float]] = {}  # rung -> [frames, seconds] over the run
        self._last: tuple[str, int, float] | None = None  # the last closed stretch: (rung, frames, seconds)
        self._rung = controller.ladder[controller.index].name  # what the current slot's frames run as

    def observed(self) -> dict[str, tuple[float, float]]:
        """What each rung achieved while it was the current one: {rung name: (frames, seconds)}."""
        self._close_segment()
        return {k: (v[0], v[1]) for k, v in self._observed.items()}

    def settled(self) -> tuple[str, int, float] | None:
        """The rung the run ended on and what it achieved in its last stretch there: (rung, frames, seconds)."""
        self._close_segment()
        return self._last

    def _close_segment(self) -> None:
        if self._segment is not None:
            name, first, last, frames = self._segment
            total = self._observed.setdefault(name, [0, 0.0])
            total[0] += frames - 1  # frames after the first, over the time since it
            total[1] += last - first
            self._last = (name, frames - 1, last - first)
            self._segment = None

    def _count(self, name: str, now: float) -> None:
        if self._segment is None or self._segment[0] != name:
            self._close_segment()
            self._segment = [name, now, now, 0]
        self._segment[2] = now
        self._segment[3] += 1

    def rate(self) -> float | None:
        """Files: the measured output FPS. Live: the pipeline's capacity, since the camera caps the output: the
        inference time of the frames that ran the model, spread over all frames when key frames leave some out
        (None until one has run since the last switch)."""
        if not self.live:
            return self.meter.fps
        if not self.infer_ms:
            return None
        share = max(sum(self.inferred) / len(self.inferred), 1.0 / cast(int, self.inferred.maxlen))  # 30, set above
        return self.streams * 1000.0 / (sum(self.infer_ms) / len(self.infer_ms)) / share

    def on_frame(self, rec: FrameRecord) -> None:
        if rec.slot is not self.pipeline.slot:
            return  # a frame of the previous model, still draining after a switch
        now = self.clock()
        self._count(self._rung, now)
        self.meter.tick(now)
        self.inferred.append(rec.inferred)
        if rec.inferred:  # a propagated frame has no inference time: it only lowers the share below
            self.infer_ms.append(rec.ms.get("infer", 0.0))
        rate = self.rate()
        if rate is None:
            return
        index = self.controller.observe(rate)
        if index is not None:
            threading.Thread(target=self._switch, args=(index, rate, rec.index), daemon=True, name="model-loader").start()

    def _switch(self, index: int, rate: float, frame: int) -> None:
        cand = self.controller.ladder[index]
        old, old_index = self._rung, self.controller.index
        try:
            slot = load_kept(self.slots, cand, self.load)
        except Exception as e:  # a model that cannot load is skipped, the run goes on
            log.info(f"rtseg: could not load {cand.name} ({e}); staying on {old}")
            self.controller.switched(self.controller.index)
            return
        from ..temporal import KeyFrames

        self.pipeline.switch_to(slot, KeyFrames(cand.keyframe))
        self._rung = cand.name
        self.controller.switched(index)
        self.meter = RateMeter(self.controller.cfg.window_s)
        self.infer_ms.clear()
        self.inferred.clear()
        event = switch_event(self.clock() - self.t0, frame, old, cand.name, index > old_index, rate, self.controller.target)
        self.switches.append(event)
        log.info(f"rtseg: {event['t']:.1f}s step {event['direction']}: {old} -> {cand.name} ({rate:.1f} FPS, target {event['target']:g})")
