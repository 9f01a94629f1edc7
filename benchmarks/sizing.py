"""Issue-16 sizing: what 100 cameras at 15 FPS need, from figures measured here by this script.

    python benchmarks/sizing.py [--cameras 100] [--fps 15] [--model mnv2-050-lraspp-os32-240x320-voc-kd]
                                [--frames 450] [--repeats 2] [--out DIR]

For camera-like H.264 clips at 576p (vtest.avi's own 768x576), 720p and 1080p (vtest upscaled; libx264
veryfast, GOP 30, made with PyAV), `rtseg run CLIP --no-show --stats` is timed twice per repeat:
  cpu   the model on ONNX Runtime on every core: decode, preprocess, inference, overlay (no file written)
  null  `--backend null`, an instant stand-in for the model: what a camera costs the CPU when a GPU infers
Each gives frames per second on this machine's cores, so core-seconds per frame = cores / FPS and cores per
camera = fps x cores / FPS. 100 cameras on CPU nodes need cameras x that; on GPU nodes the CPU side still
needs cameras x the null figure (decode, resize, overlay stay on the CPU in rtseg today), and the GPU's
inference rate is a figure this script cannot measure without one (issue 15). Writes NAME.md and NAME.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]
from common import environment, header_markdown, write_report  # noqa: E402
from decode_cost import SIZES, source_frames, write_h264  # noqa: E402


def run_fps(clip: Path, model: str, backend: str, work: Path) -> float:
    stats = work / "s.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rtseg",
            "run",
            str(clip),
            "--model",
            model,
            "--backend",
            backend,
            "--no-show",
            "--quiet",
            "--stats",
            str(stats),
        ],
        check=True,
    )
    return json.loads(stats.read_text())["fps"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--model", default="mnv2-050-lraspp-os32-240x320-voc-kd")
    p.add_argument("--frames", type=int, default=450)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--node-cores", type=int, default=32, help="the CPU node the plan is written for")
    p.add_argument("--headroom", type=float, default=0.7, help="share of a node's cores the plan fills")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/sizing_cpu"))
    args = p.parse_args()
    env, cores = environment(), os.cpu_count() or 1
    frames = source_frames(Path(args.video), args.frames)
    got = {(r, b): [] for r in SIZES for b in ("cpu", "null")}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        clips = {}
        for name, size in SIZES.items():
            clips[name] = work / f"{name}.mp4"
            write_h264(clips[name], frames, size)
        for r in range(args.repeats):  # interleaved: every clip and backend once per repeat
            for name in SIZES:
                for backend, kind in (("onnxruntime", "cpu"), ("null", "null")):
                    got[(name, kind)].append(run_fps(clips[name], args.model, backend, work))
            print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    rows = []
    for name in SIZES:
        row = {"resolution": name, "size": SIZES[name]}
        for kind in ("cpu", "null"):
            xs = got[(name, kind)]
            fps = statistics.median(xs)
            per_camera = args.fps * cores / fps
            row[kind] = {
                "fps": round(fps, 1),
                "fps_range": [round(min(xs), 1), round(max(xs), 1)],
                "core_ms_per_frame": round(1000 * cores / fps, 2),
                "cores_per_camera": round(per_camera, 3),
                "cores_for_all": round(args.cameras * per_camera, 1),
                "nodes_for_all": math.ceil(args.cameras * per_camera / (args.node_cores * args.headroom)),
            }
        rows.append(row)
    n, f = args.cameras, args.fps
    lines = [
        f"# {n} cameras at {f:g} FPS: what they need, from figures measured here",
        "",
        header_markdown(env),
        f"- model `{args.model}`; camera-like H.264 clips made from {len(frames)} frames of `{args.video}`; "
        f"`rtseg run CLIP --no-show` on this machine's {cores} cores, {args.repeats} interleaved repeats, "
        "median FPS (range); no output file written; core-ms per frame = cores x 1000 / FPS",
        "",
        f"| camera | model on CPU: FPS here | core-ms / frame | cores per camera | cores for {n} | "
        f"{args.node_cores}-core nodes at {args.headroom:.0%} | CPU side when a GPU infers (null backend): "
        f"FPS here | core-ms / frame | cores for {n} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, z = r["cpu"], r["null"]
        lines.append(
            f"| {r['resolution']} {r['size'][0]}x{r['size'][1]} H.264 | {c['fps']} ({c['fps_range'][0]}-"
            f"{c['fps_range'][1]}) | {c['core_ms_per_frame']} | {c['cores_per_camera']} | {c['cores_for_all']} | "
            f"{c['nodes_for_all']} | {z['fps']} ({z['fps_range'][0]}-{z['fps_range'][1]}) | "
            f"{z['core_ms_per_frame']} | {z['cores_for_all']} |"
        )
    write_report(args.out, lines, {**env, "cameras": n, "fps": f, "node_cores": args.node_cores, "headroom": args.headroom, "rows": rows})


if __name__ == "__main__":
    main()
