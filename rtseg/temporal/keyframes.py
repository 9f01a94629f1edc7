"""Which frames run the model (key frames), and carrying the last model output to the frames between.

The pipeline calls `Temporal.plan(rec)` from its preprocess stage and `Temporal.carry(rec)` from its
postprocess stage; both stages see frames one at a time and in order, so the state each keeps needs no lock
(the plan side: reference luma, flow, frames since the key; the carry side: reference outputs, smoothing).
Frames planned as key frames are inferred as always (in parallel on several streams); the others skip
inference, and `carry` fills their outputs by warping the reference output with the flow `plan` measured.

A key frame is forced, whatever the interval, when the flow cannot explain the picture: the share of pixels
whose warp residual exceeds `RESIDUAL_LEVEL` passes `cut_share` (a scene cut, a fast pan, a large new
object). `--keyframe auto` has no fixed interval: a new key frame when that share passes `auto_share`, at the
latest every `auto_max` frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from .motion import PRESETS, Motion, small_gray
from .smoothing import Smoother


class FrameRecord(Protocol):
    """What this module reads and writes of the pipeline's frame record (runtime/frame.py)."""

    image: np.ndarray | None
    i420: np.ndarray | None
    slot: Any  # the model slot: `input_size`, `info.classes`
    outputs: dict[str, np.ndarray] | None
    inferred: bool
    temporal: Any


RESIDUAL_LEVEL = 24  # gray levels: a pixel the warp leaves further off than this is "unexplained"
CUT_SHARE = 0.35  # share of unexplained pixels that forces a key frame (scene cut, whip pan)
AUTO_SHARE = 0.06  # --keyframe auto: share that calls for a new key frame
AUTO_MAX = 8  # --keyframe auto: at most this many frames from one key frame to the next


@dataclass(frozen=True)
class KeyFrames:
    """How often the model runs: every `interval`-th frame, or "auto" (when the warp says so)."""

    interval: int | Literal["auto"] = 1

    @classmethod
    def parse(cls, text: str | int | float | None) -> "KeyFrames":
        """`--keyframe N` (N >= 1) or `--keyframe auto`."""
        if text is None:
            return cls(1)
        if str(text).strip().lower() == "auto":
            return cls("auto")
        try:
            n = int(text)
            if isinstance(text, float) and not text.is_integer():
                raise ValueError
        except ValueError:
            raise ValueError(f"--keyframe takes a whole number of frames (1: every frame) or 'auto', not {text!r}") from None
        if n < 1:
            raise ValueError(f"--keyframe takes a whole number of frames >= 1 (1: every frame) or 'auto', not {n}")
        return cls(n)

    @property
    def every_frame(self) -> bool:
        return self.interval == 1

    def __str__(self) -> str:
        return "auto" if self.interval == "auto" else f"every {self.interval}"


@dataclass(frozen=True)
class TemporalSettings:
    """Key frames and smoothing for a run; the defaults are what benchmarks/keyframes.py measured best."""

    keyframes: KeyFrames = KeyFrames(1)
    smooth: bool = False
    # DIS flow preset (motion.PRESETS); None: "ultrafast" with key frames (the flow runs on every frame, and a
    # faster one buys more frames than a finer one saves points), "medium" for --smooth alone
    preset: str | None = None
    anchor: str = "previous"  # warp frame to frame ("previous") or from the key frame ("key")
    cut_share: float = CUT_SHARE
    auto_share: float = AUTO_SHARE
    auto_max: int = AUTO_MAX
    smooth_weight: float = 0.27  # the current frame's share of the blended evidence (smoothing.Smoother)

    @property
    def flow_preset(self) -> str:
        """The DIS preset this run starts with."""
        return self.flow_preset_for(self.keyframes)

    def flow_preset_for(self, keyframes: KeyFrames) -> str:
        """The DIS preset for an interval (the selector may change the interval while running)."""
        if self.preset is not None:
            return self.preset
        return "medium" if keyframes.every_frame else "ultrafast"

    @property
    def active(self) -> bool:
        """Whether anything temporal runs at all (every frame inferred and no smoothing: the plain pipeline)."""
        return self.smooth or not self.keyframes.every_frame


@dataclass
class FramePlan:
    """What `plan` decided for one frame, read by `carry`."""

    key: bool
    motion: Motion | None = None
    maps: tuple[np.ndarray, np.ndarray] | None = None  # current -> anchor (propagated frames)
    prev_maps: tuple[np.ndarray, np.ndarray] | None = None  # current -> previous frame (smoothing)
    prev_residual: np.ndarray | None = None  # per-pixel warp residual to the previous frame
    unexplained: float | None = None  # share of pixels the warp leaves unexplained
    reason: str = ""  # why a key frame: interval, cut, model, first


@dataclass
class Temporal:
    """The pipeline's temporal state (see the module docstring); `keyframes` may change while running (the
    selector's rungs carry a key interval)."""

    settings: TemporalSettings
    keyframes: KeyFrames = field(init=False)
    inferred: int = 0
    propagated: int = 0
    forced: int = 0  # key frames the residual forced before their interval was up
    # plan side
    _motion: Motion | None = field(default=None, repr=False)
    _slot: object | None = field(default=None, repr=False)
    _key_gray: np.ndarray | None = field(default=None, repr=False)
    _prev_gray: np.ndarray | None = field(default=None, repr=False)
    _since_key: int = 0
    _drift: float = 0.0
    # carry side
    _key_outputs: dict | None = field(default=None, repr=False)
    _prev_outputs: dict | None = field(default=None, repr=False)
    _smoother: Smoother | None = field(default=None, repr=False)

    def __post_init__(self):
        self.keyframes = self.settings.keyframes
        if self.settings.anchor not in ("key", "previous"):
            raise ValueError(f"anchor must be 'key' or 'previous', not {self.settings.anchor!r}")
        if self.settings.smooth:
            self._smoother = Smoother(self.settings.smooth_weight, RESIDUAL_LEVEL)
        if self.settings.flow_preset not in PRESETS:
            raise ValueError(f"flow preset must be one of {', '.join(PRESETS)}, not {self.settings.flow_preset!r}")

    # -- preprocess stage --------------------------------------------------------------------------
    def plan(self, rec: FrameRecord) -> bool:
        """Decide whether `rec` runs the model, measuring the motion its propagation or smoothing needs."""
        s, slot = self.settings, rec.slot
        if self.keyframes.every_frame and not s.smooth:  # a selector rung that infers every frame: no flow at all
            rec.temporal, rec.inferred, self._key_gray, self._slot = FramePlan(True, reason="interval"), True, None, slot
            self.inferred += 1
            return True
        size, preset = tuple(slot.input_size), s.flow_preset_for(self.keyframes)
        if self._motion is None or self._motion.size != size or self._motion.preset != preset:
            self._motion, self._key_gray, self._prev_gray = Motion(size, preset), None, None
        gray = small_gray(rec.image, rec.i420, size)
        plan = self._decide(gray, slot)
        rec.temporal, rec.inferred = plan, plan.key
        self._prev_gray = gray
        if plan.key:
            self._key_gray, self._since_key, self._drift = gray, 0, 0.0
            self.inferred += 1
        else:
            self.propagated += 1
        self._since_key += 1
        return plan.key

    def _decide(self, gray: np.ndarray, slot) -> FramePlan:
        s, motion, interval = self.settings, self._motion, self.keyframes.interval
        if self._slot is not slot or self._key_gray is None:
            first = self._slot is None or self._key_gray is None
            self._slot = slot
            return FramePlan(True, motion, reason="first" if first else "model")
        due = interval != "auto" and self._since_key >= interval
        if due and not s.smooth:
            return FramePlan(True, motion, reason="interval")  # no flow needed at all
        # plan() made the motion before asking, and a key frame's luma is the previous frame's or older
        assert motion is not None and self._prev_gray is not None
        prev_maps = prev_residual = None
        if s.smooth or s.anchor == "previous":
            prev_maps = motion.maps(gray, self._prev_gray)
            prev_residual = motion.residual(gray, self._prev_gray, prev_maps)
        if due:  # inferred anyway; a cut still resets the smoothing's history
            assert prev_residual is not None  # due without smoothing returned above
            cut = unexplained_share(prev_residual) > s.cut_share
            return FramePlan(True, motion, prev_maps=prev_maps, prev_residual=prev_residual, reason="cut" if cut else "interval")
        if s.anchor == "key":
            maps = motion.maps(gray, self._key_gray)
            residual = motion.residual(gray, self._key_gray, maps)
        else:  # "previous": measured above
            assert prev_maps is not None and prev_residual is not None
            maps, residual = prev_maps, prev_residual
        unexplained = unexplained_share(residual)
        plan = FramePlan(False, motion, maps, prev_maps, prev_residual, unexplained)
        if s.anchor == "previous":  # chained: what each step leaves unexplained adds up
            self._drift += unexplained
            unexplained = self._drift
        if unexplained > s.cut_share:
            plan.key, plan.reason = True, "cut"
        elif interval == "auto" and (unexplained > s.auto_share or self._since_key >= s.auto_max):
            plan.key, plan.reason = True, "auto"
        if plan.key and plan.reason == "cut":
            self.forced += 1
        return plan

    # -- postprocess stage -------------------------------------------------------------------------
    def carry(self, rec: FrameRecord) -> None:
        """Give a propagated frame its outputs (the anchor's, warped), and smooth, in frame order."""
        plan: FramePlan = rec.temporal
        if plan.key:
            outputs = rec.outputs
            self._key_outputs = outputs
        else:
            anchor = self._key_outputs if self.settings.anchor == "key" else self._prev_outputs
            # the first frame is a key frame, and plan() measured the motion of every frame it propagates to
            assert anchor is not None and plan.motion is not None and plan.maps is not None
            outputs = propagate(anchor, plan.motion, plan.maps)
        self._prev_outputs = outputs
        if self._smoother is not None:
            assert outputs is not None  # an inferred frame has its outputs
            outputs = self._smoother(
                outputs, plan.prev_maps, plan.prev_residual, len(rec.slot.info.classes), reset=plan.reason in ("first", "model", "cut")
            )
        rec.outputs = outputs

    def summary(self) -> dict:
        """Counts for the run's statistics."""
        return {
            "keyframe": str(self.keyframes.interval),
            "smooth": self.settings.smooth,
            "flow": self.settings.flow_preset,
            "inferred": self.inferred,
            "propagated": self.propagated,
            "forced_keyframes": self.forced,
        }


def unexplained_share(residual: np.ndarray) -> float:
    """Share of pixels the warp leaves more than RESIDUAL_LEVEL grey levels off."""
    return float(np.count_nonzero(residual > RESIDUAL_LEVEL)) / residual.size


def propagate(outputs: dict[str, np.ndarray], motion: Motion, maps: tuple[np.ndarray, np.ndarray]) -> dict:
    """A reference frame's outputs moved to the current frame: class maps by nearest pixel, score maps (N, C,
    H, W) interpolated, boxes shifted by the median motion inside each."""
    moved: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        if name == "mask":
            moved[name] = Motion.warp(value[0], maps, nearest=True)[None]
        elif value.ndim == 4:  # scores: channels last for remap, then back
            moved[name] = (
                Motion.warp(np.ascontiguousarray(value[0].transpose(1, 2, 0)), maps, nearest=False)
                .reshape(value.shape[2], value.shape[3], -1)
                .transpose(2, 0, 1)[None]
            )
        elif name == "boxes":
            moved[name] = shift_boxes(value, motion.flow(maps))  # flow and boxes both in model-input pixels
        else:
            moved[name] = value
    return moved


def shift_boxes(boxes: np.ndarray, flow: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(1, K, 4) boxes in model-input pixels moved with what is inside them. The flow is backward (current ->
    reference), so a box at the reference position moves by minus the median flow found there."""
    dx, dy = flow
    h, w = dx.shape
    out = boxes.copy()
    for b in out[0]:
        x1, y1, x2, y2 = (int(np.clip(v, 0, lim)) for v, lim in zip(b, (w - 1, h - 1, w, h)))
        if x2 <= x1 or y2 <= y1:
            continue
        b -= np.array([np.median(dx[y1:y2, x1:x2]), np.median(dy[y1:y2, x1:x2])] * 2, np.float32)
    return out
