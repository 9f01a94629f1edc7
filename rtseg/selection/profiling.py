"""`rtseg profile`: how fast each shipped model runs on this machine, cached per machine.

Two numbers per model, both at its input size and in the inference layout `rtseg run` uses:
- model-only: the backend alone on a preprocessed frame, `streams` loops at once (throughput) and the
  latency of one inference (p50/p95);
- end-to-end: the pipeline (preprocess, infer, postprocess with overlay) on a synthetic 640x480 clip
  held in memory, so decoding and encoding, which depend on the user's files, are left out.
Results are keyed by the machine (CPU model, cores, backend and its version, streams x threads) and by
the model file's checksum, so a new model or machine is profiled again and nothing else is.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.paths import cache_dir
from ..core.modelinfo import ModelInfo, measured_sizes, sha256, variant_name
from ..runtime.sources import Captured
from ..runtime.timing import percentiles, time_model

FRAME_SIZE = (640, 480)  # (width, height) of the synthetic end-to-end clip
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


def machine_key(backend: str, streams: int, threads: int) -> str:
    import onnxruntime

    from ..core.machine import cpu_name

    return f"{cpu_name()} | {os.cpu_count()} cores | {backend} (onnxruntime {onnxruntime.__version__}) | {streams}x{threads}"


class ProfileCache:
    """One JSON file per machine key under the cache folder."""

    def __init__(self, key: str, folder: Path | None = None):
        self.key = key
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = (folder or cache_dir()) / "profiles" / f"{digest}.json"
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text()).get("profiles", {})
            except (json.JSONDecodeError, OSError):
                self.entries = {}  # a damaged cache is only a cache: measure again

    def get(self, info: ModelInfo, size: tuple[int, int] | None = None) -> Profile | None:
        e = self.entries.get(variant_name(info, size))
        if e and e.get("sha256") == model_checksum(info):
            return Profile(**e)
        return None

    def put(self, p: Profile) -> None:
        self.entries[p.model] = asdict(p)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"machine": self.key, "profiles": self.entries}, indent=2) + "\n")
        tmp.replace(self.path)


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


def profile_model(info: ModelInfo, backend: str, streams: int, threads: int, frames: int = 60,
                  size: tuple[int, int] | None = None) -> Profile:
    import datetime as dt

    from ..runtime.pipeline import Pipeline
    from ..runtime.slot import load_slot

    slot = load_slot(info, backend, threads, input_size=size, pool_size=streams + 4)
    x = slot.preprocess(SyntheticSource(1).frame)
    m = time_model(slot.backend, x, frames, reps=1, streams=streams, warmup=3)
    slot.pre.pool.release(x)
    stats = Pipeline(SyntheticSource(frames), slot, [], streams=streams).run(handle_signals=False)
    e = percentiles(stats.latency_ms)
    slot.close()
    return Profile(slot.name, model_checksum(info), round(m.fps, 2), round(m.ms_p50, 3), round(m.ms_p95, 3),
                   round(stats.fps, 2), round(e["p50"], 3), round(e["p95"], 3), frames,
                   dt.datetime.now().astimezone().isoformat(timespec="seconds"))


def ensure_profiles(infos: list[ModelInfo], backend: str, streams: int, threads: int, force: bool = False,
                    frames: int = 60) -> dict[str, Profile]:
    """Cached profiles of every model at every input size it has a measured accuracy for (at least its own),
    measuring (and saying so) the ones this machine has not seen. Keyed by variant name."""
    cache = ProfileCache(machine_key(backend, streams, threads))
    out = {}
    for info in infos:
        for size in measured_sizes(info) or [tuple(info.input_size)]:
            name = variant_name(info, size)
            p = None if force else cache.get(info, size)
            if p is None:
                log.info(f"rtseg: profiling {name} on this machine ({frames} frames; cached afterwards)")
                p = profile_model(info, backend, streams, threads, frames, size)
                cache.put(p)
            out[name] = p
    return out
