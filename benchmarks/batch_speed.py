"""Issue-16 speed check: `rtseg batch` throughput on 1 and 2 Ray workers (and in one process), N copies of a clip.

    python benchmarks/batch_speed.py [--video ../shared/data/video/vtest.avi] [--copies 8] [--frames 0]
                                     [--workers 1,2] [--model NAME] [--repeats 1] --out DIR

Each configuration runs `rtseg batch COPIES --out FRESH_DIR --quiet` as a user would, timed from outside: wall
time includes Ray's start-up and every worker's model load, which is what a batch costs. The copies are hard
links where the file system allows (rtseg sees distinct files), so N copies cost no disk. `--frames F` cuts the
clip to its first F frames first (re-encoded as MJPG), for a quick run. Writes DIR/batch_speed.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown  # noqa: E402

HERE = Path(__file__).resolve().parent


def cut_clip(video: Path, frames: int, target: Path) -> Path:
    """The first `frames` frames of `video`, as an MJPG .avi: a short clip whose length is known exactly."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    cap.release()
    if writer is None:
        sys.exit(f"batch_speed: no frame could be read from {video}")
    writer.release()
    return target


def make_copies(video: Path, copies: int, folder: Path) -> list[Path]:
    """`copies` distinct files with the clip's content: hard links, or real copies across file systems."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(copies):
        path = folder / f"copy{i:03d}{video.suffix}"
        try:
            os.link(video, path)
        except OSError:
            shutil.copyfile(video, path)
        paths.append(path)
    return paths


def time_batch(inputs: Path, out: Path, model: str | None, workers: int | None) -> dict:
    """One `rtseg batch` over the copies into a fresh folder; wall time and what the done-records say."""
    cmd = [sys.executable, "-m", "rtseg", "batch", str(inputs), "--out", str(out), "--quiet"]
    cmd += ["--model", model] if model else []
    cmd += ["--no-ray"] if workers is None else ["--workers", str(workers)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"batch_speed: {' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.done.json"))]
    frames = sum(r["frames_out"] for r in records)
    summary = res.stdout.strip().splitlines()[-1]  # the command's own footer: it times Ray's start-up apart
    startup = re.search(r"([\d.]+) s of it starting Ray", summary)
    startup_s = float(startup.group(1)) if startup else 0.0
    return {
        "workers": workers,
        "videos": len(records),
        "frames": frames,
        "wall_s": round(wall, 3),
        "fps": round(frames / wall, 2),
        "ray_startup_s": startup_s,
        "fps_after_startup": round(frames / max(wall - startup_s, 1e-9), 2),
        "per_video_fps_median": round(statistics.median(r["fps"] for r in records), 2),
        "models": sorted({r["model"] for r in records}),
        "summary": summary,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(HERE.parent.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--copies", type=int, default=8, help="videos in the batch (copies of --video)")
    p.add_argument("--frames", type=int, default=0, help="cut the clip to its first F frames (0: the whole clip)")
    p.add_argument("--workers", default="1,2", help="Ray worker counts to measure, comma-separated")
    p.add_argument("--no-process", action="store_true", help="skip the one-process (--no-ray) reference run")
    p.add_argument("--model", default=None, help="model name or .onnx path (default: the manifest's default)")
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration (the median is reported)")
    p.add_argument("--out", required=True, help="folder for batch_speed.md and batch_speed.json")
    args = p.parse_args()

    video = Path(args.video)
    if not video.exists():
        sys.exit(f"batch_speed: no such video: {video}")
    env = environment()
    configs = ([] if args.no_process else [None]) + [int(w) for w in args.workers.split(",")]
    print(f"command: {env['command']}\nmachine: {env['machine']}\ndate: {env['date']}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = cut_clip(video, args.frames, tmp / "clip.avi") if args.frames else video
        inputs = tmp / "inputs"
        make_copies(clip, args.copies, inputs)
        for workers in configs:
            runs = [time_batch(inputs, tmp / f"out-{workers}-{r}", args.model, workers) for r in range(args.repeats)]
            best = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]  # the median run, whole
            best["wall_s_runs"] = [r["wall_s"] for r in runs]
            results.append(best)
            label = "one process (--no-ray)" if workers is None else f"{workers} Ray worker(s)"
            print(
                f"{label}: {best['frames']} frames in {best['wall_s']:.1f} s = {best['fps']:.1f} FPS "
                f"(per video {best['per_video_fps_median']:.1f} FPS)",
                flush=True,
            )
    ray_runs = {r["workers"]: r for r in results if r["workers"] is not None}
    base = ray_runs.get(1)
    md = [
        f"# rtseg batch throughput: {args.copies} copies of {video.name}" + (f" cut to {args.frames} frames" if args.frames else ""),
        "",
        header_markdown(env),
        f"- model: {', '.join(results[0]['models'])}; {args.repeats} run(s) per configuration (median by wall time)",
        "- wall time of the whole command: Ray start-up, model loads, decode, inference, overlay, H.264/MPEG-4 encode, commit",
        "",
        "| configuration | videos | frames | wall s | FPS (frames / wall) | Ray start-up s | FPS after start-up "
        "| per-video FPS (median) | FPS vs Ray 1 worker |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        label = "one process (`--no-ray`, every core)" if r["workers"] is None else f"Ray, `--workers {r['workers']}`"
        speedup = f"{r['fps'] / base['fps']:.2f}x" if base else "-"
        md.append(
            f"| {label} | {r['videos']} | {r['frames']} | {r['wall_s']:.1f} | {r['fps']:.1f} | "
            f"{r['ray_startup_s']:.1f} | {r['fps_after_startup']:.1f} | {r['per_video_fps_median']:.1f} | {speedup} |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch_speed.json").write_text(
        json.dumps({"environment": env, "video": str(video), "copies": args.copies, "frames": args.frames, "results": results}, indent=2)
        + "\n"
    )
    (out / "batch_speed.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {out / 'batch_speed.md'} and {out / 'batch_speed.json'}")


if __name__ == "__main__":
    main()
