"""Issue-14 input: ONNX Runtime with the input's free dimensions fixed to the one shape a slot uses, or not.

    python benchmarks/static_shape.py [--models NAME ...] [--repeats 5] [--seconds 1] [--out FILE]

rtseg's models are exported with a free batch, height and width, so one file runs at every input size the
selector offers; a pipeline's slot, though, only ever calls its session with one frame of one size. Fixing
those dimensions when the session is made (`fixed_size`, ONNX Runtime's free-dimension overrides) lets the
optimiser fold the shape arithmetic (TensorFlow-style padding, resize targets) into constants. For each model
(default: the held-out `-voc` zoo): the class map / boxes of one real vtest.avi frame from both sessions
(class maps and labels must agree exactly; box corners and scores are compared in float), then model-only
frames per second on one thread (the layout rtseg's file pipeline uses per stream) and on ONNX Runtime's
default threads, both sessions interleaved per repeat (each first in every other repeat); medians and
ranges.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]
from common import environment, header_markdown, write_report  # noqa: E402


def main() -> None:
    from rtseg.backends.onnxruntime import OnnxRuntimeBackend
    from rtseg.core.manifest import Manifest
    from rtseg.core.modelinfo import resolve_model
    from rtseg.runtime.preprocess import Preprocessor
    from rtseg.runtime.timing import time_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", help="manifest names (default: every -voc model)")
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="about how long each timed loop runs")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/static_shape_cpu"))
    args = p.parse_args()

    names = args.models or [n for n in Manifest.load().names() if "-voc" in n]
    cap = cv2.VideoCapture(args.video)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        sys.exit(f"cannot read a frame of {args.video}")
    rows = []
    for name in names:
        info = resolve_model(name)
        size = tuple(info.input_size)
        x = Preprocessor(size, info.mean, info.std, pool_size=1)(frame)
        row = {"model": name, "input_size": list(size)}
        for threads, key in ((1, "one_thread"), (None, "default_threads")):
            free = OnnxRuntimeBackend(info.path, threads=threads, spin=threads is None)
            fixed = OnnxRuntimeBackend(info.path, threads=threads, spin=threads is None, fixed_size=size)
            a, b = free.infer(x), fixed.infer(x)
            # class maps and labels must be equal; box coordinates and scores may move in float rounding
            exact = [k for k in a if not np.issubdtype(a[k].dtype, np.floating)]
            row["identical"] = row.get("identical", True) and all(np.array_equal(a[k], b[k]) for k in exact)
            drift = max((float(np.abs(a[k] - b[k]).max()) for k in a if k not in exact), default=0.0)
            row["float_max_diff"] = max(row.get("float_max_diff", 0.0), drift)
            first = time_model(free, x, 20, warmup=5)  # sizes the loops: about --seconds each
            iters = max(20, int(first.fps * args.seconds))
            rates: dict[str, list[float]] = {"free": [], "fixed": []}
            for r in range(args.repeats):
                order = (("free", free), ("fixed", fixed))
                for label, backend in order if r % 2 == 0 else order[::-1]:  # neither always runs first
                    rates[label].append(time_model(backend, x, iters, warmup=5).fps)
            row[key] = {label: {"fps": statistics.median(r), "range": [min(r), max(r)]} for label, r in rates.items()}
            row[key]["gain"] = row[key]["fixed"]["fps"] / row[key]["free"]["fps"]
        rows.append(row)
        print(name, {k: round(row[k]["gain"], 3) for k in ("one_thread", "default_threads")}, row["identical"], flush=True)

    env = environment()
    lines = [
        "# ONNX Runtime sessions with the input shape fixed (what rtseg's slots load) against free dimensions",
        "",
        header_markdown(env),
        f"- input: the first frame of `{args.video}` preprocessed at each model's size, batch 1; "
        f"{args.repeats} interleaved repeats of about {args.seconds:g} s per session; FPS medians (min-max)",
        "",
        "- same output: the class map (and box labels) equal; float outputs (box corners in pixels, scores): largest difference",
        "",
        "| model | size | same output | 1 thread: free | 1 thread: fixed | gain | default threads: free | fixed | gain |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(r: dict) -> str:
        return f"{r['fps']:.1f} ({r['range'][0]:.1f}-{r['range'][1]:.1f})"

    for r in rows:
        one, many = r["one_thread"], r["default_threads"]
        same = ("yes" if r["identical"] else "NO") + (f", floats within {r['float_max_diff']:.1e}" if r["float_max_diff"] else "")
        lines.append(
            f"| {r['model']} | {r['input_size'][0]}x{r['input_size'][1]} | {same} | "
            f"{cell(one['free'])} | {cell(one['fixed'])} | {one['gain']:.3f} | {cell(many['free'])} | "
            f"{cell(many['fixed'])} | {many['gain']:.3f} |"
        )
    gains = [r["one_thread"]["gain"] for r in rows]
    lines += [
        "",
        f"- one thread: gain median {statistics.median(gains):.3f} (min {min(gains):.3f}, max {max(gains):.3f}) "
        f"over {len(rows)} models; every class map and label identical: {all(r['identical'] for r in rows)}",
    ]
    write_report(args.out, lines, {"environment": env, "rows": rows})


if __name__ == "__main__":
    main()
