"""`rtseg profile`: how fast each shipped model runs on this machine, cached per machine.

Two numbers per model, both at its input size and in the inference layout `rtseg run` uses:
- model-only: the backend alone on a preprocessed frame, `streams` loops at once (throughput) and the
  latency of one inference (p50/p95);
- end-to-end: the pipeline (preprocess, infer, postprocess with overlay) on a synthetic 640x480 clip
  held in memory, so decoding and encoding, which depend on the user's files, are left out.
Results are keyed by the machine (CPU model, cores, backend and its version, streams x threads) and by
the model file's checksum, so a new model or machine is profiled again and nothing else is.

Each profile says what kind of number it is: `measured` (the above), `scaled` (the selector's first use: the
variant's shipped reference speed times what one probe here measured against its own reference, see
reference.py), `estimate` (a few model-only inferences of that variant here; the selector probes the model it
chooses before trusting a scaled figure) or `online` (what a run with the selector actually achieved with that
model). Model-only figures become end-to-end ones through the pipeline efficiency this machine has measured. It
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
from typing import Iterator, cast

import numpy as np

from ..core.machine import OthersLoad
from ..core.paths import cache_dir
from .reference import ReferenceSpeeds, load_reference
from .ladder import HELD_OUT_SPLIT
from ..core.modelinfo import ModelInfo, keyframe_drops, measured_sizes, rung_name, sha256, variant_name  # noqa: F401
from ..runtime.sources import Captured, Source
from ..runtime.timing import percentiles, time_model

FRAME_SIZE = (640, 480)  # (width, height) of the synthetic end-to-end clip
BUSY_SHARE = 0.25  # other processes using more of the machine than this: the profile is not clean
PIPELINE_EFFICIENCY = 0.8  # end-to-end / model-only FPS for estimates, until this machine has measured its own
LATENCY_SCALE = 4.0  # end-to-end p95 / model-only p95 latency for estimates (measured here: 4 to 6)
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
    kind: str = "measured"  # measured | scaled | estimate | online (see the module docstring)
    others_load: float | None = None  # share of the machine other processes used meanwhile (0..1)

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

    return (
        f"{cpu_name()} | {os.cpu_count()} cores | {backend} (onnxruntime {onnxruntime.__version__}) | "
        f"{streams}x{threads} | rtseg runtime {RUNTIME_REVISION}"
    )


class ProfileCache:
    """One JSON file per machine key under the cache folder, written under a lock and merged."""

    def __init__(self, key: str, folder: Path | None = None):
        self.key = key
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = (folder or cache_dir()) / "profiles" / f"{digest}.json"
        self.entries: dict[str, dict] = {}
        self.settled: dict[str, dict] = {}  # where the last run for a target settled, by `settle_key`
        self.reload()

    def reload(self) -> None:
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text())
                self.entries, self.settled = dict(doc.get("profiles", {})), dict(doc.get("settled", {}))
            except (json.JSONDecodeError, OSError, AttributeError, TypeError, ValueError):
                self.entries, self.settled = {}, {}  # a damaged cache is only a cache: measure again

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
        self._write(profiles={p.model: asdict(p)})

    def settle(self, key: str, record: dict) -> None:
        """Remember where a run for `key` (see `settle_key`) ended up (call under `lock`)."""
        self._write(settled={key: record})

    def _write(self, profiles: dict | None = None, settled: dict | None = None) -> None:
        mine, my_settled = dict(self.entries), dict(self.settled)
        self.reload()
        self.entries = {**mine, **self.entries, **(profiles or {})}
        self.settled = {**my_settled, **self.settled, **(settled or {})}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"machine": self.key, "profiles": self.entries, "settled": self.settled}, indent=2) + "\n")
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


def profile_model(
    info: ModelInfo, backend: str, streams: int, threads: int, frames: int = 60, size: tuple[int, int] | None = None, keyframe: int = 1
) -> Profile:
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
        # a Source as the pipeline reads it (the Protocol's fps and frame_count may be None, these never are)
        source = cast(Source, SyntheticSource(frames))
        stats = Pipeline(source, slot, [], streams=streams, temporal=temporal).run(handle_signals=False)
        slot.close()
    e = percentiles(stats.latency_ms)
    return Profile(
        rung_name(info, size, keyframe),
        model_checksum(info),
        round(m.fps, 2),
        round(m.ms_p50, 3),
        round(m.ms_p95, 3),
        round(stats.fps, 2),
        round(e["p50"], 3),
        round(e["p95"], 3),
        frames,
        _now(),
        "measured",
        None if load.share is None else round(load.share, 3),
    )


def flow_ms(size: tuple[int, int], preset: str = "ultrafast", reps: int = 3) -> float:
    """What the key-frame path adds to every frame at a model size (luma, flow, warp residual), in ms."""
    from ..temporal.motion import Motion, small_gray

    frame = SyntheticSource(1).frame
    hw = cast("tuple[int, int]", tuple(size))  # (H, W), also when it came as a list
    motion = Motion(hw, preset)
    a = small_gray(frame, None, hw)
    b = np.roll(a, 2, axis=1)
    motion.residual(a, b, motion.maps(a, b))  # first call allocates
    t0 = time.perf_counter()
    for _ in range(reps):
        motion.residual(a, b, motion.maps(a, b))
    return (time.perf_counter() - t0) / reps * 1e3


def keyframe_estimate(base: Profile, keyframe: int, size: tuple[int, int], name: str, flow: float | None = None) -> Profile:
    """A key-frame rung's first guess from its model's profile: a frame's end-to-end time with the model's own
    time (model-only FPS) paid on one frame in `keyframe`, plus the flow every frame pays (`flow` ms, timed
    here when not given), in series (no overlap assumed). As good as its base: `scaled` when that is."""
    flow = flow_ms(size) if flow is None else flow
    ms = max(1e3 / base.e2e_fps - (1 - 1 / keyframe) * 1e3 / base.model_fps, 0.0) + flow
    return Profile(
        name,
        base.sha256,
        base.model_fps,
        base.model_ms_p50,
        base.model_ms_p95,
        round(1e3 / ms, 2),
        base.e2e_ms_p50,
        base.e2e_ms_p95,
        base.frames,
        _now(),
        "scaled" if base.kind == "scaled" else "estimate",
        base.others_load,
    )


def scaled_estimate(info: ModelInfo, size: tuple[int, int], fps: float, efficiency: float, latency_scale: float, probe: Profile) -> Profile:
    """A variant's first guess with no inference: its reference model-only `fps` already scaled to this machine.
    Latency percentiles keep the probe's spread (p95 / p50); end to end as for an estimate."""
    ms = 1e3 / fps
    spread = probe.model_ms_p95 / probe.model_ms_p50 if probe.model_ms_p50 > 0 else 1.0
    return Profile(
        variant_name(info, size),
        model_checksum(info),
        round(fps, 2),
        round(ms, 3),
        round(ms * spread, 3),
        round(fps * efficiency, 2),
        round(ms * latency_scale, 3),
        round(ms * spread * latency_scale, 3),
        0,
        _now(),
        "scaled",
        probe.others_load,
    )


def choose_probe(variants: list[tuple[ModelInfo, tuple[int, int]]], ref: ReferenceSpeeds) -> tuple[ModelInfo, tuple[int, int]]:
    """The variant to time when the others are scaled from it: the one of median reference speed, so the
    ratio is taken where most candidates are (neither the tiniest model, whose time is mostly overhead, nor
    the largest, which costs most to time)."""
    ranked = sorted(variants, key=lambda v: ref.fps(variant_name(*v), model_checksum(v[0])) or 0.0)
    return ranked[len(ranked) // 2]


def estimate_model(
    info: ModelInfo,
    backend: str,
    streams: int,
    threads: int,
    efficiency: float,
    size: tuple[int, int] | None = None,
    budget_s: float = 0.05,
    latency_scale: float = LATENCY_SCALE,
) -> Profile:
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
    return Profile(
        slot.name,
        model_checksum(info),
        round(m.fps, 2),
        round(m.ms_p50, 3),
        round(m.ms_p95, 3),
        round(e2e, 2),
        round(m.ms_p50 * latency_scale, 3),
        round(m.ms_p95 * latency_scale, 3),
        iters,
        _now(),
        "estimate",
        None if load.share is None else round(load.share, 3),
    )


def ensure_profiles(
    infos: list[ModelInfo],
    backend: str,
    streams: int,
    threads: int,
    force: bool = False,
    frames: int = 60,
    quick: bool = False,
    split: str = "val",
) -> dict[str, Profile]:
    """Profiles of every model at every input size it has a measured accuracy for on `split` (at least its own), keyed by
    variant name. Missing ones are measured (and said so); `quick` (the selector's first use) estimates them
    instead, and takes estimates and busy measurements as they are; otherwise (`rtseg profile`) anything not
    clean is measured again."""
    cache = ProfileCache(machine_key(backend, streams, threads))
    wanted = [(info, size) for info in infos for size in measured_sizes(info, split) or [cast("tuple[int, int]", tuple(info.input_size))]]
    if split == "val" and not quick:  # `rtseg profile`: the sizes any split measured, so no variant stays a guess
        wanted += [(i, s) for i in infos for s in measured_sizes(i, HELD_OUT_SPLIT) if (i, s) not in wanted]
    # key-frame rungs: at the model's own size, for each interval whose accuracy was measured on a sequence
    rungs = [(i, s, 1) for i, s in wanted] + [
        (i, cast("tuple[int, int]", tuple(i.input_size)), k)
        for i in infos
        for k in keyframe_drops(i)
        if any(w == (i, tuple(i.input_size)) for w in wanted)
    ]

    def usable(p: Profile | None) -> bool:
        return p is not None and not force and (quick or p.clean)

    if not all(usable(cache.get(i, s, k)) for i, s, k in rungs):
        with cache.lock():  # another run may be measuring this very machine: wait, then use its numbers
            cache.reload()
            missing = [(i, s, k) for i, s, k in rungs if not usable(cache.get(i, s, k))]
            efficiency, latency = cache.efficiency(), cache.latency_scale()
            scale = (
                _reference_scale([(i, s) for i, s, k in missing if k == 1], backend, streams, threads, efficiency, latency, cache)
                if quick
                else {}
            )
            if quick and missing:
                every = sum(k == 1 for _, _, k in missing)
                how = (
                    f"{len(scale) - 1} of them scaled from their reference speeds by timing one" if scale else "from a few inferences each"
                )
                derived = f" and {len(missing) - every} key-frame rung(s) from those" if len(missing) > every else ""
                log.info(
                    f"rtseg: first use here: estimating {every} model x size variant(s) ({how}){derived}; runs "
                    "refine them, `rtseg profile` measures them fully"
                )
            flows: dict[tuple[int, ...], float] = {}  # the flow's cost per size, timed once
            for info, size, k in missing:  # every-frame rungs first: a key-frame estimate starts from its model's
                if quick and k > 1:
                    flow = flows.setdefault(tuple(size), flow_ms(size))
                    base = cache.get(info, size)
                    assert base is not None  # its every-frame rung was cached already, or came first in `missing`
                    p = keyframe_estimate(base, k, size, rung_name(info, size, k), flow)
                elif quick and rung_name(info, size) in scale:
                    p = scale[rung_name(info, size)]
                elif quick:
                    p = estimate_model(info, backend, streams, threads, efficiency, size, latency_scale=latency)
                else:
                    log.info(f"rtseg: profiling {rung_name(info, size, k)} on this machine ({frames} frames; cached afterwards)")
                    p = profile_model(info, backend, streams, threads, frames, size, k)
                    if p.busy and p.others_load is not None:  # (busy: a load was measured)
                        log.warning(
                            f"rtseg: {p.model}: other programs used {100 * p.others_load:.0f}% of the machine "
                            "while it was measured; kept, marked busy, measured again next time"
                        )
                cache.put(p)
            force = False  # measured now: what the cache holds is what we want
    # every rung is cached by now: usable already, or just put
    return {rung_name(i, s, k): cast(Profile, cache.get(i, s, k)) for i, s, k in rungs}


def _reference_scale(
    variants: list[tuple[ModelInfo, tuple[int, int]]],
    backend: str,
    streams: int,
    threads: int,
    efficiency: float,
    latency: float,
    cache: "ProfileCache",
) -> dict[str, Profile]:
    """First-use profiles for every variant the shipped reference speeds know, from one probe here (the probe's
    own profile an `estimate`, the others `scaled`); {} where there is no reference, it knows fewer than two
    of them, or another backend runs (the reference is ONNX Runtime's on the CPU)."""
    ref = load_reference() if backend == "onnxruntime" else None
    known = [v for v in variants if ref is not None and ref.fps(variant_name(*v), model_checksum(v[0]))]
    if ref is None or len(known) < 2:
        return {}
    info, size = choose_probe(known, ref)
    probe = estimate_model(info, backend, streams, threads, efficiency, size, latency_scale=latency)
    # every known variant has its reference speed (not None)
    ratio = probe.model_fps / cast(float, ref.fps(variant_name(info, size), model_checksum(info)))
    scaled = {
        variant_name(i, s): scaled_estimate(
            i, s, cast(float, ref.fps(variant_name(i, s), model_checksum(i))) * ratio, efficiency, latency, probe
        )
        for i, s in known
        if (i, s) != (info, size)
    }
    return {probe.model: probe, **scaled}


def probe_variant(info: ModelInfo, size: tuple[int, int], backend: str, streams: int, threads: int) -> None:
    """Replace a `scaled` guess of one variant by a few inferences of it here (and its key-frame rungs' guesses
    by ones built on that): what the selector does to the model it chose before trusting it."""
    cache = ProfileCache(machine_key(backend, streams, threads))
    with cache.lock():
        cache.reload()
        p = estimate_model(info, backend, streams, threads, cache.efficiency(), size, latency_scale=cache.latency_scale())
        cache.put(p)
        rungs = [k for k in keyframe_drops(info) if (r := cache.get(info, size, k)) is not None and r.kind == "scaled"]
        flow = flow_ms(size) if rungs else 0.0  # the flow's cost at this size, timed once for every interval
        for k in rungs:
            cache.put(keyframe_estimate(p, k, size, rung_name(info, size, k), flow))


def settle_key(target_fps: float, task: str, split: str, margin: float, max_latency: float | None, keyframes: bool) -> str:
    """What makes two selector runs "the same command" as far as the choice goes (the machine and layout are
    the cache file's own key)."""
    return f"{task} | {target_fps:g} FPS x {margin:g} | latency {max_latency or '-'} | {split} | kf {keyframes}"


def remember_settled(backend: str, streams: int, threads: int, key: str, rung: str, frames: int, seconds: float, target_fps: float) -> None:
    """Keep the rung a run with the selector ended on, with what it achieved there, for the next run of the
    same command here (`select_for_rate` starts on it)."""
    cache = ProfileCache(machine_key(backend, streams, threads))
    with cache.lock():
        cache.reload()
        cache.settle(
            key,
            {
                "rung": rung,
                "fps": round(frames / seconds, 1) if seconds > 0 else None,
                "held": seconds > 0 and frames / seconds >= target_fps,
                "date": _now(),
            },
        )


def last_settled(backend: str, streams: int, threads: int, key: str) -> dict | None:
    """Where the last run of the same command here settled ({rung, fps, held, date}), or None."""
    return ProfileCache(machine_key(backend, streams, threads)).settled.get(key)


def learn_from_run(
    backend: str, streams: int, threads: int, observed: dict[str, tuple[float, float]], infos: dict[str, tuple], min_seconds: float = 2.0
) -> list[str]:
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
            cache.put(
                Profile(
                    name,
                    old.sha256,
                    old.model_fps,
                    old.model_ms_p50,
                    old.model_ms_p95,
                    round(fps, 2),
                    old.e2e_ms_p50,
                    old.e2e_ms_p95,
                    int(frames),
                    _now(),
                    "online",
                    None,
                )
            )
            learned.append(name)
    return learned
