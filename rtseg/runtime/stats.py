"""Run statistics: frame counts, FPS, per-stage and end-to-end latency percentiles.

`RunStats.record` is the one place a finished frame is counted, so the pipeline only says when a frame
is done and the rules (what latency means for a live source) stay beside the numbers they produce.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field

from .frame import STAGES, FrameRecord
from .timing import percentiles  # noqa: F401  (stats and its readers share one definition)


class Reservoir(list):
    """Timings of a run of any length in bounded memory: every value up to `cap`, then a uniform random sample
    of them all (Vitter's algorithm R), so percentiles stay representative and a week-long run holds what an
    hour holds. `count` is every value seen."""

    count: int  # type: ignore[assignment]  # every value seen, as documented: it shadows list.count() on purpose

    def __init__(self, cap: int = 20_000, seed: int = 0):
        super().__init__()
        self.cap, self.count = cap, 0
        self._rng = random.Random(seed)

    def append(self, value: float) -> None:
        self.count += 1
        if len(self) < self.cap:
            super().append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < self.cap:
                self[j] = value


class RateMeter:
    """Frames per second over a sliding time window."""

    def __init__(self, window_s: float = 1.0):
        self.window_s = window_s
        self.times: deque[float] = deque()

    def tick(self, t: float | None = None) -> None:
        t = time.perf_counter() if t is None else t
        self.times.append(t)
        while self.times and t - self.times[0] > self.window_s:
            self.times.popleft()

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)


EXIT_INPUT_ENDED_EARLY = 3  # a file ended before the frames its header announced
EXIT_SOURCE_LOST = 4  # a live source was lost and did not come back
EXIT_NOTHING_DECODED = 1  # the input ended without one decodable frame: an error


@dataclass
class RunStats:
    frames_in: int = 0  # frames read from the source
    frames_out: int = 0  # frames that reached every sink
    dropped: int = 0  # stale live frames skipped to keep latency bounded
    seconds: float = 0.0  # wall time from the first frame read to the last written
    interrupted: bool = False
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: Reservoir() for s in STAGES})
    latency_ms: list[float] = field(default_factory=Reservoir)
    recent_latency_ms: deque = field(default_factory=lambda: deque(maxlen=100), repr=False)  # for live readings
    skipped_inputs: list[str] = field(default_factory=list)  # unreadable images in a folder
    frames_by_model: dict[str, int] = field(default_factory=dict)
    switches: list[dict] = field(default_factory=list)  # model switches made by the selector
    expected_frames: int | None = None  # what a file's header announced (None: live, or not said)
    gaps: list[dict] = field(default_factory=list)  # a live source's outages: when, how long, reconnect attempts
    source_lost: bool = False  # the live source went away and did not come back
    frames_inferred: int = 0  # frames the model ran on (the others were propagated)
    temporal: dict | None = None  # key frames and smoothing, when on (rtseg/temporal)
    t_start: float | None = field(default=None, init=False, repr=False)  # perf_counter() as the first read began

    def counts(self, dropped: int, temporal=None) -> dict:
        """Frames so far, while running: read, written, dropped (live), the recent p95 latency, and with key
        frames how many the model ran on and the interval now."""
        recent = list(self.recent_latency_ms)
        counts: dict[str, object] = {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": dropped,
            "latency_ms_p95": round(percentiles(recent)["p95"], 2) if recent else None,
        }
        if temporal is not None:
            counts |= {"frames_inferred": self.frames_inferred, "keyframe": str(temporal.keyframes.interval)}
        return counts

    def finish(self, source, temporal, dropped: int, interrupted: bool) -> None:
        """What the run's end adds: frames a live source dropped, whether a stop cut the input short, what the
        source announced, skipped and lost, the key frames' summary."""
        self.dropped = dropped
        self.interrupted = interrupted
        self.expected_frames = None if source.live else source.frame_count
        self.skipped_inputs = list(source.skipped)
        self.temporal = temporal.summary() if temporal is not None else None
        self.gaps = list(getattr(source, "gaps", []))  # a live source's outages, when it reports them
        self.source_lost = bool(getattr(source, "lost", False))

    def record(self, rec: FrameRecord, t_done: float, live: bool) -> None:
        """Account one frame that every sink has taken, finished at perf_counter() time `t_done`."""
        self.frames_out += 1
        self.frames_by_model[rec.model] = self.frames_by_model.get(rec.model, 0) + 1
        self.frames_inferred += rec.inferred
        for name, v in rec.ms.items():
            if name not in self.stage_ms:
                self.stage_ms[name] = Reservoir()
            self.stage_ms[name].append(v)
        # from the frame being available to its results written: decoding counts for files, but a live
        # source's read() mostly waits for the camera's next frame, which is not latency we add
        latency = (t_done - rec.t_captured) * 1e3 + (0.0 if live else rec.ms["capture"])
        self.latency_ms.append(latency)
        self.recent_latency_ms.append(latency)
        if self.t_start is None:
            self.t_start = rec.t_captured - rec.ms["capture"] / 1e3
        self.seconds = t_done - self.t_start

    @property
    def ended_early(self) -> bool:
        """A file that stopped decoding before the frames it announced (headers estimate: allow 1%, 2 frames)."""
        if self.interrupted or not self.expected_frames:
            return False
        # unreadable images were announced too, and are reported apart
        read = self.frames_in + len(self.skipped_inputs)
        return self.expected_frames - read > max(2, 0.01 * self.expected_frames)

    @property
    def exit_code(self) -> int:
        """How the run's input ended, for the exit status: 0 as announced, EXIT_INPUT_ENDED_EARLY for a file
        cut short, EXIT_SOURCE_LOST for a live source that did not come back (signals and errors aside)."""
        if self.ended_early:
            return EXIT_INPUT_ENDED_EARLY
        if self.source_lost:
            return EXIT_SOURCE_LOST
        return EXIT_NOTHING_DECODED if self.nothing_decoded else 0

    @property
    def nothing_decoded(self) -> bool:
        """An input that ended by itself without one decodable frame (every image unreadable, say): a run
        that produced nothing must not look like a success to a script."""
        return not self.interrupted and not self.source_lost and self.frames_in == 0

    @property
    def abandoned(self) -> int:
        """Frames read but never written nor counted as dropped: those in flight when a second Ctrl-C or an
        error stopped the run at once (a first Ctrl-C drains them)."""
        return max(0, self.frames_in - self.frames_out - self.dropped)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "abandoned": self.abandoned,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "interrupted": self.interrupted,
            "stage_ms": {s: {k: round(v, 3) for k, v in percentiles(v).items()} for s, v in self.stage_ms.items()},
            "latency_ms": {k: round(v, 3) for k, v in percentiles(self.latency_ms).items()},
            "skipped_inputs": self.skipped_inputs,
            "expected_frames": self.expected_frames,
            "ended_early": self.ended_early,
            "gaps": self.gaps,
            "source_lost": self.source_lost,
            "frames_by_model": self.frames_by_model,
            "switches": self.switches,
            "frames_inferred": self.frames_inferred,
            "frames_propagated": self.frames_out - self.frames_inferred,
            "temporal": self.temporal,
        }

    def summary(self) -> str:
        lines = [
            f"frames in {self.frames_in}, out {self.frames_out}, dropped {self.dropped}"
            + (f", unreadable {len(self.skipped_inputs)}" if self.skipped_inputs else "")
            + (f", abandoned in flight {self.abandoned} (stopped at once)" if self.abandoned else "")
            + f"; {self.fps:.1f} FPS over {self.seconds:.1f} s"
            + (" (interrupted)" if self.interrupted else ""),
            f"{'stage':<12}{'mean ms':>9}{'p50 ms':>9}{'p95 ms':>9}",
        ]
        for s in STAGES:
            p = percentiles(self.stage_ms[s])
            lines.append(f"{s:<12}{p['mean']:>9.2f}{p['p50']:>9.2f}{p['p95']:>9.2f}")
        for g in self.gaps:
            lines.append(
                f"source {'LOST' if g.get('lost') else 'gap'}: down {g['seconds']:.1f} s from "
                f"{time.strftime('%H:%M:%S', time.localtime(g['at']))}, {g['attempts']} reconnect attempt(s)"
                + ("; gave up" if g.get("lost") else "; interrupted" if g.get("interrupted") else "; back")
            )
        p = percentiles(self.latency_ms)
        lines.append(f"{'end-to-end':<12}{p['mean']:>9.2f}{p['p50']:>9.2f}{p['p95']:>9.2f}  (capture to sink)")
        if self.temporal:
            t = self.temporal
            lines.append(
                f"key frames: model ran on {self.frames_inferred} of {self.frames_out} frames, "
                f"{self.frames_out - self.frames_inferred} propagated by motion (--keyframe {t['keyframe']}"
                f"{', smoothing' if t['smooth'] else ''}; {t['forced_keyframes']} forced by a cut)"
                + ("; infer times are key frames'" if self.frames_inferred < self.frames_out else "")
            )
        if len(self.frames_by_model) > 1 or self.switches:
            lines.append(
                "models: " + ", ".join(f"{m} {n} frames" for m, n in self.frames_by_model.items()) + f"; {len(self.switches)} switch(es)"
            )
            lines += [
                f"  {e['t']:>6.1f}s frame {e['frame']}: {e['direction']} {e['from']} -> {e['to']} "
                f"({e['rate']:.1f} FPS, target {e['target']:g})"
                for e in self.switches
            ]
        return "\n".join(lines)
