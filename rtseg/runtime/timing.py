"""Timing: per-stage milliseconds that travel with each frame, and the one model-only speed measurement.

`stage(rec, "infer")` is a context manager in the spirit of Ultralytics' `Profile`: the time spent inside
it is written to the frame's `ms` record. `time_model` is how rtseg measures a backend alone (profiles,
`rtseg bench`, the benchmarks): warm-up, then `reps` repetitions of `iters` inferences on `streams`
threads at once; throughput is the median over repetitions, latency the percentiles over all calls.
"""

from __future__ import annotations

import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@contextmanager
def stage(rec, name: str) -> Iterator[None]:
    """Time the block into `rec.ms[name]` (milliseconds), also when it raises."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        rec.ms[name] = (time.perf_counter() - t0) * 1e3


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "p50": float("nan"), "p95": float("nan")}
    a = np.asarray(values)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95))}


@dataclass
class ModelTiming:
    fps: float  # median over repetitions of inferences per second (all streams together)
    fps_reps: list[float]  # each repetition's rate: the spread to quote beside the median
    ms_p50: float
    ms_p95: float


def time_model(backend, x: np.ndarray, iters: int, reps: int = 1, streams: int = 1, warmup: int = 10) -> ModelTiming:
    """Model-only speed of `backend` on the input `x` (see the module docstring)."""
    for _ in range(warmup):
        backend.infer(x)
    per_stream = max(1, iters // streams)
    rates, lat = [], []

    def loop() -> None:
        mine = []
        for _ in range(per_stream):
            t = time.perf_counter()
            backend.infer(x)
            mine.append((time.perf_counter() - t) * 1e3)
        lat.extend(mine)  # list.extend is atomic under the GIL

    for _ in range(reps):
        workers = [threading.Thread(target=loop) for _ in range(streams)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rates.append(per_stream * streams / (time.perf_counter() - t0))
    p = percentiles(lat)
    return ModelTiming(statistics.median(rates), rates, p["p50"], p["p95"])
