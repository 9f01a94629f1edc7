"""The speed/accuracy selector: the most accurate model that holds a target frame rate, and keeping it.

`choose` picks at start from measured profiles and the manifest's accuracy on one split for all
candidates (`ranking_split`: the drive-disjoint one when the zoo has it, else val). `Controller` then watches
the frame rate while running and moves along the Pareto front (FPS vs accuracy): down when the rate
stays under the target (other programs, heat, heavier frames), straight to the rung predicted to hold it,
and up one rung at a time when there is lasting headroom.
Hysteresis (a band between the down and up thresholds), a minimum dwell after each switch and a
growing wait before retrying a model that just failed keep it from flapping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo, keyframe_drops, measured_sizes, metrics_key, rung_name, variant_name
from ..core.pareto import pareto_indices
from ..core.tasks import DET, SEG, SEGDET, has_det, has_seg, normalize_task


HELD_OUT_SPLIT = "holdout:0006R0"  # the drive no `-voc` model trained on: the honest ranking


@dataclass(frozen=True)
class Candidate:
    name: str  # model name, with @HxW when run at another size than its own
    accuracy: float  # mIoU (seg), mAP@0.5 (det), or their mean (both), on the ranking split, at that size
    fps: float  # measured end-to-end FPS on this machine
    latency_ms: float  # measured end-to-end p95 latency
    info: ModelInfo | None = field(default=None, compare=False, hash=False)
    input_size: tuple[int, int] | None = field(default=None, compare=False, hash=False)
    keyframe: int = 1  # the model runs on every `keyframe`-th frame, its result propagated by flow between

    @property
    def variant(self) -> str:
        """The model at its input size (what is loaded), without the key-frame interval."""
        return variant_name(self.info, self.input_size) if self.info is not None else self.name


def accuracy_of(info: ModelInfo, task: str, size: tuple[int, int] | None = None, split: str = "val") -> float | None:
    """The manifest's measured accuracy on `split` for the task at that input size; None when the model cannot
    do the task, was not measured there, or was measured on a drive that trained it (not that split's figure)."""
    task = normalize_task(task)
    m = info.entry.get("metrics", {}).get(metrics_key(split, size, info), {})
    if m.get("warning"):
        return None
    miou, map50 = m.get("miou"), (m.get("detection") or {}).get("map50")
    if task == SEG:
        return miou if has_seg(info.task) else None
    if task == DET:
        return map50 if has_det(info.task) else None
    return (miou + map50) / 2 if info.task == SEGDET and miou is not None and map50 is not None else None


def ranked_on(info: ModelInfo, task: str, split: str) -> bool:
    return any(accuracy_of(info, task, size, split) is not None for size in measured_sizes(info, split))


RANK_BY = ("auto", "heldout", "val")


def ranking_split(infos: list[ModelInfo], task: str, prefer: str = "auto") -> str:
    """Which split ranks the candidates: `auto` takes the drive-disjoint one when at least two models (an INT8
    sibling is the same model) can be ranked on it (val flatters the models whose drive it shares), else
    val; or the one asked for."""
    if prefer not in RANK_BY:
        raise RtsegError(f"rank_by must be one of {', '.join(RANK_BY)}, got {prefer!r}")
    if prefer == "val":
        return "val"
    models = {i.entry.get("base_model") or i.name for i in infos if ranked_on(i, task, HELD_OUT_SPLIT)}
    return HELD_OUT_SPLIT if prefer == "heldout" or len(models) >= 2 else "val"


SEQUENCE_SPLIT = "val"  # CamVid val (drive 0016E5) is a 15 Hz labelled sequence: key frames are measured on it


def build_candidates(infos: list[ModelInfo], profiles: dict, task: str, split: str = "val") -> list[Candidate]:
    """Every model x input size that can do `task` with a measured accuracy on `split`, with its speed here; and,
    for segmentation, every key-frame interval measured for a model at its own size (`rtseg eval --keyframe N
    --update-manifest` on the val sequence): its accuracy is the model's on `split` less the points that interval
    lost against every frame on the sequence (the held-out drive is sampled at 1 Hz: nothing to propagate)."""
    out = []
    for info in infos:
        for size in measured_sizes(info, split):
            acc = accuracy_of(info, task, size, split)
            p = profiles.get(variant_name(info, size))
            if acc is None or p is None:
                continue
            out.append(Candidate(variant_name(info, size), acc, p.e2e_fps, p.e2e_ms_p95, info, size))
            if normalize_task(task) != SEG or tuple(size) != tuple(info.input_size):
                continue
            for k, drop in keyframe_drops(info, SEQUENCE_SPLIT).items():
                pk = profiles.get(rung_name(info, size, k))
                if pk is not None:
                    out.append(Candidate(rung_name(info, size, k), acc - drop / 100, pk.e2e_fps, pk.e2e_ms_p95, info, size, k))
    return out


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both FPS and accuracy, from the fastest to the most accurate."""
    return [candidates[i] for i in pareto_indices([(c.fps, c.accuracy) for c in candidates])]


def choose(
    candidates: list[Candidate], target_fps: float, margin: float = 1.1, max_latency_ms: float | None = None
) -> tuple[Candidate, str]:
    """The most accurate candidate with FPS >= target x margin (and latency within the bound), and why.

    When none qualifies: the fastest, with a warning that names the best achievable rate.
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    feasible = [c for c in candidates if c.fps >= target_fps * margin and (max_latency_ms is None or c.latency_ms <= max_latency_ms)]
    if feasible:
        best = max(feasible, key=lambda c: (c.accuracy, c.fps))
        how = f", the model on every {best.keyframe} frames and propagated between" if best.keyframe > 1 else ""
        return best, (
            f"{best.name}: the most accurate ({100 * best.accuracy:.1f}{how}) of {len(feasible)} model(s) measured "
            f"at >= {target_fps:g} x {margin:g} FPS here ({best.fps:.1f} FPS, p95 {best.latency_ms:.0f} ms)"
        )
    fastest = max(candidates, key=lambda c: (c.fps, c.accuracy))
    return fastest, (
        f"WARNING: no model reaches {target_fps:g} FPS here"
        + (f" within {max_latency_ms:g} ms" if max_latency_ms else "")
        + f"; using the fastest, {fastest.name}, at {fastest.fps:.1f} FPS"
    )


@dataclass
class ControllerConfig:
    window_s: float = 1.0  # FPS is measured over this sliding window
    low: float = 1.0  # step down when FPS < target x low ...
    down_after_s: float = 0.5  # ... for this long, to the most accurate rung predicted at >= target x down_margin
    down_margin: float = 1.05
    margin: float = 1.15  # step up one rung when it is predicted at >= target x margin ...
    up_after_s: float = 4.0  # ... for this long (doubled after each failed try of that rung)
    min_dwell_s: float = 1.5  # no decision this soon after a switch


class Controller:
    """Decides switches along a ladder (the Pareto front, fastest first) from observed frame times.

    Feed it `observe(rate)` once per output frame, where rate is the measured FPS (files) or the
    pipeline's capacity (live sources, whose output rate the camera caps); it returns the ladder index
    to switch to, or None. Call `switched` once the new model is live.
    """

    def __init__(
        self, ladder: list[Candidate], index: int, target_fps: float, config: ControllerConfig | None = None, clock=time.monotonic
    ):
        self.ladder, self.index, self.target = ladder, index, target_fps
        self.cfg = config or ControllerConfig()
        self.clock = clock
        self.since_switch = clock()
        self.below_since: float | None = None
        self.above_since: float | None = None
        self.failures = [0] * len(ladder)
        self.pending: int | None = None

    def observe(self, rate: float) -> int | None:
        now = self.clock()
        if self.pending is not None or now - self.since_switch < max(self.cfg.min_dwell_s, self.cfg.window_s):
            return None
        if rate < self.target * self.cfg.low:
            self.above_since = None
            self.below_since = self.below_since if self.below_since is not None else now
            if now - self.below_since >= self.cfg.down_after_s and self.index > 0:
                return self._decide(self._rung_below(rate), failed=self.index)
            return None
        self.below_since = None
        if self.index + 1 < len(self.ladder):
            cur, nxt = self.ladder[self.index], self.ladder[self.index + 1]
            predicted = rate * nxt.fps / cur.fps
            if predicted >= self.target * self.cfg.margin:
                self.above_since = self.above_since if self.above_since is not None else now
                wait = self.cfg.up_after_s * 2 ** self.failures[self.index + 1]
                if now - self.above_since >= wait:
                    return self._decide(self.index + 1)
            else:
                self.above_since = None
        return None

    def _rung_below(self, rate: float) -> int:
        """The most accurate lower rung whose predicted rate (measured x profiled speed ratio) holds the
        target with a small margin; the fastest when none does. Far short of target, this skips rungs
        that would fail too, instead of spending a dwell on each."""
        cur = self.ladder[self.index]
        for j in range(self.index - 1, -1, -1):
            if rate * self.ladder[j].fps / cur.fps >= self.target * self.cfg.down_margin:
                return j
        return 0

    def _decide(self, index: int, failed: int | None = None) -> int:
        if failed is not None:
            self.failures[failed] += 1
        self.pending = index
        return index

    def switched(self, index: int) -> None:
        self.index, self.pending = index, None
        self.since_switch = self.clock()
        self.below_since = self.above_since = None
