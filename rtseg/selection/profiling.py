"""`rtseg profile`: how fast each shipped model runs on this machine, cached per machine.

Two numbers per model, both at its input size and in the inference layout `rtseg run` uses:
- model-only: the backend alone on a preprocessed frame, `streams` loops at once (throughput) and the
  latency of one inference (p50/p95);
- end-to-end: the pipeline (preprocess, infer, postprocess with overlay) on a synthetic 640x480 clip
  held in memory, so decoding and encoding, which depend on the user's files, are left out.
Results are keyed by the machine (CPU model, cores, backend and its version, streams x threads) and by
the model file's checksum, so a new model or machine is profiled again and nothing else is.

Each profile says what kind of number it is: `measured` (the above), `estimate` (the selector's first use:
a few model-only inferences per variant, scaled by the pipeline's measured efficiency, so the first frame
comes within seconds) or `online` (what a run with the selector actually achieved with that model). It
also records the share of the machine other processes used while it was taken: a profile measured beside
other work is kept but marked busy, and `rtseg profile` measures it again. Writers take a lock and merge,
so two runs started together neither measure each other's load twice nor lose each other's entries.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.machine import OthersLoad
from ..core.paths import cache_dir
from .selector import HELD_OUT_SPLIT
from ..core.modelinfo import ModelInfo, keyframe_drops, measured_sizes, rung_name, sha256, variant_name  # noqa: F401
from ..runtime.sources import Captured
from ..runtime.timing import percentiles, time_model

FRAME_SIZE = (640, 480)  # (width, height) of the synthetic end-to-end clip
BUSY_SHARE = 0.25        # other processes using more of the machine than this: the profile is not clean
PIPELINE_EFFICIENCY = 0.8  # end-to-end / model-only FPS for estimates, until this machine has measured its own
LATENCY_SCALE = 4.0        # end-to-end p95 / model-only p95 latency for estimates (measured here: 4 to 6)
LOCK_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


@dataclass
class Profile:
    model: str
    sha256: str
    model_fps: float
    model_ms_p50: float
    model_ms_p95: float
    e2e_fps: float
    e2e_ms_p50: float
    e2e_ms_p95: float
    frames: int
    date: str
    kind: str = "measured"              # measured | estimate | online (see the module docstring)
    others_load: float | None = None    # share of the machine other processes used meanwhile (0..1)

    @property
    def busy(self) -> bool:
        return self.others_load is not None and self.others_load > BUSY_SHARE

    @property
    def clean(self) -> bool:
        """A full measurement on a quiet machine: what `rtseg profile` keeps without measuring again."""
        return self.kind == "measured" and not self.busy

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# How rtseg runs a model, as far as its speed goes: bumped when that changes, so profiles cached by an older
# rtseg are measured again instead of steering the selector. 2: sessions loaded for one input shape
# (2026-12-01, 1.02-1.24x faster on this CPU, median 1.10: benchmarks/results/static_shape_cpu.md).
RUNTIME_REVISION = 2


def machine_key(backend: str, streams: int, threads: int) -> str:
    import onnxruntime

    from ..core.machine import cpu_name

    return (f"{cpu_name()} | {os.cpu_count()} cores | {backend} (onnxruntime {onnxruntime.__version__}) | "
            f"{streams}x{threads} | rtseg runtime {RUNTIME_REVISION}")


class ProfileCache:
    """One JSON file per machine key under the cache folder, written under a lock and merged."""

    def __init__(self, key: str, folder: Path | None = None):
        self.key = key
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = (folder or cache_dir()) / "profiles" / f"{digest}.json"
        self.entries: dict[str, dict] = {}
        self.reload()

    def reload(self) -> None:
        if self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text()).get("profiles", {})
            except (json.JSONDecodeError, OSError):
                self.entries = {}  # a damaged cache is only a cache: measure again

    @contextmanager
    def lock(self, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Only one process measures or writes this machine's profiles at a time (POSIX advisory lock). A run
        waits at most `timeout_s` for another (saying so), then goes on without it: entries are merged on
        write, so the worst case is measuring beside the other run, marked busy."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as f:
            try:
                import fcntl
            except ImportError:  # Windows: no advisory locks here
                yield
                return
            deadline, said = time.monotonic() + timeout_s, False
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        log.warning("rtseg: another rtseg is still profiling this machine; going on beside it")
                        break
                    if not said:
                        log.info("rtseg: waiting for another rtseg that is profiling this machine ...")
                        said = True
                    time.sleep(0.1)
            yield

    def get(self, info: ModelInfo, size: tuple[int, int] | None = None, keyframe: int = 1) -> Profile | None:
        e = self.entries.get(rung_name(info, size, keyframe))
        if e and e.get("sha256") == model_checksum(info):
            return Profile.from_dict(e)
        return None

    def put(self, p: Profile) -> None:
        """Add or replace one entry, keeping what other processes wrote meanwhile (call under `lock`)."""
        mine = dict(self.entries)
        self.reload()
        self.entries = {**mine, **self.entries, p.model: asdict(p)}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"machine": self.key, "profiles": self.entries}, indent=2) + "\n")
        tmp.replace(self.path)

    def _clean_ratio(self, num: str, den: str, default: float) -> float:
        ratios = [e[num] / e[den] for e in self.entries.values() if e.get(den) and Profile.from_dict(e).clean]
        return statistics.median(ratios) if ratios else default

    def efficiency(self) -> float:
        """End-to-end / model-only FPS of this machine's clean measurements (the estimates' scale)."""
        return self._clean_ratio("e2e_fps", "model_fps", PIPELINE_EFFICIENCY)

    def latency_scale(self) -> float:
        """End-to-end / model-only p95 latency of the clean measurements: a frame waits in the stages too."""
        return self._clean_ratio("e2e_ms_p95", "model_ms_p95", LATENCY_SCALE)


def model_checksum(info: ModelInfo) -> str:
    return info.entry.get("sha256") or sha256(info.path)


class SyntheticSource:
    """An in-memory clip of one repeated frame: the pipeline's cost without decoding."""

    live = False
    name = "synthetic"
    fps = 30.0

    def __init__(self, frames: int, size: tuple[int, int] = FRAME_SIZE):
        rng = np.random.default_rng(0)
        self.frame = rng.integers(0, 256, (size[1], size[0], 3), np.uint8)
        self.frame_count, self.frame_size, self.i = frames, size, 0
        self.skipped: list[str] = []  # the Source protocol's: a frame in memory is never unreadable
        self.files: list[Path] = []

    def read(self) -> Captured | None:
        if self.i >= self.frame_count:
            return None
        self.i += 1
        return Captured(self.frame, self.i / self.fps, str(self.i))

    def close(self) -> None:
        pass


def _now() -> str:
    import datetime as dt

    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def profile_model(info: ModelInfo, backend: str, streams: int, threads: int, frames: int = 60,
                  size: tuple[int, int] | None = None, keyframe: int = 1) -> Profile:
    """The full measurement: model-only, then the pipeline on the synthetic clip (with the model on every
    `keyframe`-th frame and the flow on all of them, for a key-frame rung)."""
    from ..runtime.pipeline import Pipeline
    from ..runtime.slot import load_slot
    from ..temporal import KeyFrames, Temporal, TemporalSettings

    temporal = Temporal(TemporalSettings(KeyFrames(keyframe))) if keyframe > 1 else None

    with OthersLoad() as load:
        slot = load_slot(info, backend, threads, input_size=size, pool_size=streams + 4)
        x = slot.preprocess(SyntheticSource(1).frame)
        m = time_model(slot.backend, x, frames, reps=1, streams=streams, warmup=3)
        slot.pre.pool.release(x)
        stats = Pipeline(SyntheticSource(frames), slot, [], streams=streams, temporal=temporal).run(handle_signals=False)
        slot.close()
    e = percentiles(stats.latency_ms)
    return Profile(rung_name(info, size, keyframe), model_checksum(info), round(m.fps, 2), round(m.ms_p50, 3), round(m.ms_p95, 3),
                   round(stats.fps, 2), round(e["p50"], 3), round(e["p95"], 3), frames, _now(), "measured",
                   None if load.share is None else round(load.share, 3))


def flow_ms(size: tuple[int, int], preset: str = "ultrafast", reps: int = 3) -> float:
    """What the key-frame path adds to every frame at a model size (luma, flow, warp residual), in ms."""
    from ..temporal.motion import Motion, small_gray

    frame = SyntheticSource(1).frame
    motion = Motion(tuple(size), preset)
    a = small_gray(frame, None, tuple(size))
    b = np.roll(a, 2, axis=1)
    motion.residual(a, b, motion.maps(a, b))  # first call allocates
    t0 = time.perf_counter()
    for _ in range(reps):
        motion.residual(a, b, motion.maps(a, b))
    return (time.perf_counter() - t0) / reps * 1e3


def keyframe_estimate(base: Profile, keyframe: int, size: tuple[int, int], name: str) -> Profile:
    """A key-frame rung's first guess from its model's profile: a frame's end-to-end time with the model's own
    time (model-only FPS) paid on one frame in `keyframe`, plus the flow every frame pays, in series (no
    overlap assumed)."""
    ms = max(1e3 / base.e2e_fps - (1 - 1 / keyframe) * 1e3 / base.model_fps, 0.0) + flow_ms(size)
    return Profile(name, base.sha256, base.model_fps, base.model_ms_p50, base.model_ms_p95, round(1e3 / ms, 2),
                   base.e2e_ms_p50, base.e2e_ms_p95, base.frames, _now(), "estimate", base.others_load)


def estimate_model(info: ModelInfo, backend: str, streams: int, threads: int, efficiency: float,
                   size: tuple[int, int] | None = None, budget_s: float = 0.05,
                   latency_scale: float = LATENCY_SCALE) -> Profile:
    """A first guess in a tenth of a second: model-only inferences for about `budget_s` (at least 3 per stream:
    fewer leave thread start-up in a fast model's rate), scaled by the pipeline's measured efficiency (rate)
    and latency scale (a frame also waits in the other stages)."""
    from ..runtime.slot import load_slot

    with OthersLoad() as load:
        slot = load_slot(info, backend, threads, input_size=size, pool_size=streams + 1)  # it infers once, warm
        x = slot.preprocess(SyntheticSource(1).frame)
        t0 = time.perf_counter()
        slot.backend.infer(x)
        one = max(time.perf_counter() - t0, 1e-4)
        iters = max(3, min(40, int(budget_s / one)))  # per stream
        m = time_model(slot.backend, x, iters * streams, reps=1, streams=streams, warmup=2)
        slot.pre.pool.release(x)
        slot.close()
    e2e = m.fps * efficiency
    return Profile(slot.name, model_checksum(info), round(m.fps, 2), round(m.ms_p50, 3), round(m.ms_p95, 3),
                   round(e2e, 2), round(m.ms_p50 * latency_scale, 3), round(m.ms_p95 * latency_scale, 3), iters, _now(),
                   "estimate", None if load.share is None else round(load.share, 3))


def ensure_profiles(infos: list[ModelInfo], backend: str, streams: int, threads: int, force: bool = False,
                    frames: int = 60, quick: bool = False, split: str = "val") -> dict[str, Profile]:
    """Profiles of every model at every input size it has a measured accuracy for on `split` (at least its own), keyed by
    variant name. Missing ones are measured (and said so); `quick` (the selector's first use) estimates them
    instead, and takes estimates and busy measurements as they are; otherwise (`rtseg profile`) anything not
    clean is measured again."""
    cache = ProfileCache(machine_key(backend, streams, threads))
    wanted = [(info, size) for info in infos for size in measured_sizes(info, split) or [tuple(info.input_size)]]
    if split == "val" and not quick:  # `rtseg profile`: the sizes any split measured, so no variant stays a guess
        wanted += [(i, s) for i in infos for s in measured_sizes(i, HELD_OUT_SPLIT) if (i, s) not in wanted]
    # key-frame rungs: at the model's own size, for each interval whose accuracy was measured on a sequence
    rungs = [(i, s, 1) for i, s in wanted] + [(i, tuple(i.input_size), k) for i in infos for k in keyframe_drops(i)
                                              if any(w == (i, tuple(i.input_size)) for w in wanted)]

    def usable(p: Profile | None) -> bool:
        return p is not None and not force and (quick or p.clean)

    if not all(usable(cache.get(i, s, k)) for i, s, k in rungs):
        with cache.lock():  # another run may be measuring this very machine: wait, then use its numbers
            cache.reload()
            missing = [(i, s, k) for i, s, k in rungs if not usable(cache.get(i, s, k))]
            if quick and missing:
                log.info(f"rtseg: first use here: estimating {len(missing)} model x size variant(s) from a few "
                         "inferences each; runs refine them, `rtseg profile` measures them fully")
            efficiency, latency = cache.efficiency(), cache.latency_scale()
            for info, size, k in missing:  # every-frame rungs first: a key-frame estimate starts from its model's
                if quick and k > 1:
                    p = keyframe_estimate(cache.get(info, size), k, size, rung_name(info, size, k))
                elif quick:
                    p = estimate_model(info, backend, streams, threads, efficiency, size, latency_scale=latency)
                else:
                    log.info(f"rtseg: profiling {rung_name(info, size, k)} on this machine ({frames} frames; cached afterwards)")
                    p = profile_model(info, backend, streams, threads, frames, size, k)
                    if p.busy:
                        log.warning(f"rtseg: {p.model}: other programs used {100 * p.others_load:.0f}% of the machine "
                                    "while it was measured; kept, marked busy, measured again next time")
                cache.put(p)
            force = False  # measured now: what the cache holds is what we want
    return {rung_name(i, s, k): cache.get(i, s, k) for i, s, k in rungs}


def learn_from_run(backend: str, streams: int, threads: int, observed: dict[str, tuple[float, float]],
                   infos: dict[str, tuple], min_seconds: float = 2.0) -> list[str]:
    """Keep what a file run with the selector achieved, `{variant: (frames, seconds)}`, as the `online` rate
    of variants that only had an estimate. That rate includes the run's own decoding and outputs, so it is
    no faster than the synthetic end-to-end figure a full profile measures: a conservative correction.
    Latencies stay the estimate's. Returns the variants updated."""
    cache = ProfileCache(machine_key(backend, streams, threads))
    learned = []
    with cache.lock():
        cache.reload()
        for name, (frames, seconds) in observed.items():
            info, size, *keyframe = infos.get(name, (None, None))  # (info, size[, key-frame interval])
            old = cache.get(info, size, *keyframe) if info is not None else None
            if old is None or old.kind == "measured" or seconds < min_seconds or frames < 10:
                continue
            fps = frames / seconds
            cache.put(Profile(name, old.sha256, old.model_fps, old.model_ms_p50, old.model_ms_p95, round(fps, 2),
                              old.e2e_ms_p50, old.e2e_ms_p95, int(frames), _now(), "online", None))
            learned.append(name)
    return learned
