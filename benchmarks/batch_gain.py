"""Issue-16 check: does ONNX Runtime on this CPU gain from batching frames of several sources in one call?

    python benchmarks/batch_gain.py [--models A,B] [--batches 1,2,4,8] [--repeats 5] [--seconds 1.5] [--out DIR]

Two questions, for each model, all measured in one run with the configurations interleaved (repeat r
runs every configuration once, so a slower minute of the machine hits them all alike):
1. per frame: one call on a batch of N frames against N calls of one frame, on 1 thread and on every core;
2. what the many-sources pipeline does today (one batch-1 call per source at a time, the cores shared out,
   here as `cores` threads calling one shared session, 1 intra-op thread each) against one batched call on
   every core (frames of `cores` sources, or 2x that, per call).
Figures: frames per second (median over repeats, and the range); inference only, on random input.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]
from common import environment, header_markdown, write_report  # noqa: E402

from rtseg.backends import load_backend  # noqa: E402
from rtseg.core.modelinfo import resolve_model  # noqa: E402


def rate_of(call, frames_per_call: int, seconds: float) -> float:
    call()  # warm: the first call of a new batch size plans its memory
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call()
        n += 1
    return n * frames_per_call / (time.perf_counter() - t0)


def concurrent_rate(backend, x: np.ndarray, callers: int, seconds: float) -> float:
    """`callers` threads, each calling the shared session on one frame at a time (the pipelines of as many
    sources): frames per second over all of them."""
    counts, stop = [0] * callers, threading.Event()

    def loop(k: int) -> None:
        while not stop.is_set():
            backend.infer(x)
            counts[k] += 1

    backend.infer(x)
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(callers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="mnv2-100-dlv3p-os16-288x384-voc-int8,mnv2-050-lraspp-os32-240x320-voc-kd")
    p.add_argument("--batches", default="1,2,4,8")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/batch_gain_cpu"))
    args = p.parse_args()
    env, cores = environment(), os.cpu_count() or 1
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        info = resolve_model(name)
        h, w = info.input_size
        frames = {b: rng.standard_normal((b, 3, h, w), dtype=np.float32) for b in batches + [2 * cores]}
        sessions = {t: load_backend("onnxruntime", info, threads=t) for t in sorted({1, cores})}
        configs = [
            (f"batch {b}, {t} thread(s)", lambda b=b, t=t: rate_of(lambda: sessions[t].infer(frames[b]), b, args.seconds))
            for t in sessions
            for b in batches
        ]
        configs.append(
            (
                f"{cores} sources today: {cores} callers x batch 1, 1 thread each",
                lambda: concurrent_rate(sessions[1], frames[1], cores, args.seconds),
            )
        )
        for b in (cores, 2 * cores):
            configs.append(
                (
                    f"batched: one call of batch {b}, {cores} thread(s)",
                    lambda b=b: rate_of(lambda: sessions[cores].infer(frames[b]), b, args.seconds),
                )
            )
        got: dict[str, list[float]] = {c: [] for c, _ in configs}
        for r in range(args.repeats):
            for label, run in configs:
                got[label].append(run())
            print(f"{name}: repeat {r + 1}/{args.repeats} done", flush=True)
        for label, _ in configs:
            xs = got[label]
            rows.append(
                {
                    "model": name,
                    "config": label,
                    "fps_median": round(statistics.median(xs), 1),
                    "fps_min": round(min(xs), 1),
                    "fps_max": round(max(xs), 1),
                    "fps": [round(x, 2) for x in xs],
                }
            )
        for s in sessions.values():
            s.close()
    lines = [
        "# Batching frames of several sources in one ONNX Runtime call, on this CPU",
        "",
        header_markdown(env),
        f"- inference only (random input at each model's size), {args.repeats} interleaved repeats of "
        f"{args.seconds:g} s per configuration; frames per second, median (min-max)",
        "",
        "| model | configuration | frames/s | range |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['config']} | {r['fps_median']} | {r['fps_min']}-{r['fps_max']} |" for r in rows]
    write_report(args.out, lines, {**env, "rows": rows})


if __name__ == "__main__":
    main()
