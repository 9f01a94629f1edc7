"""Issue-16 check: N cameras in one `rtseg run` (one model shared) against one `rtseg run` per camera.

    python benchmarks/multi_source_speed.py [--cameras 1,2,4,8] [--fps 15] [--seconds 20]
                                            [--model mnv2-050-lraspp-os32-240x320-voc-kd] [--out DIR]

Each camera is a loopback MJPEG server (tests/helpers.py's) looping vtest.avi at --fps. For each N, once
as `rtseg run URL1 ... URLN --output-dir D` and once as N processes `rtseg run URLk --output D/k.mp4`,
each for --seconds, then SIGINT; per camera: frames written, FPS, dropped, latency p95 (from --stats).
A camera "keeps up" when it writes at least 90% of the frames it was sent. Writes NAME.md and NAME.json.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from common import environment, header_markdown, write_report  # noqa: E402
from helpers import MjpegServer  # noqa: E402


def cameras(video: Path, n: int, fps: float) -> list[MjpegServer]:
    cap, jpegs = cv2.VideoCapture(str(video)), []
    while (got := cap.read())[0]:
        jpegs.append(cv2.imencode(".jpg", got[1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    cap.release()
    # each camera starts at another point of the clip, so no two send the same frame at once
    return [MjpegServer(fps, jpeg_for=lambda i, k=k: jpegs[(i + 97 * k) % len(jpegs)]).start() for k in range(n)]


def stop_after(procs: list[subprocess.Popen], seconds: float) -> None:
    time.sleep(seconds)
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait(timeout=60)


def per_camera(stats: dict, seconds_alive: float, fps: float) -> dict:
    sent = fps * stats.get("seconds", seconds_alive)
    return {
        "frames_out": stats["frames_out"],
        "fps": stats["fps"],
        "dropped": stats["dropped"],
        "latency_p95_ms": stats["latency_ms"].get("p95"),
        "keeps_up": stats["frames_out"] >= 0.9 * sent,
    }


def run_config(mode: str, urls: list[str], model: str, seconds: float, fps: float, work: Path) -> list[dict]:
    base = [sys.executable, "-m", "rtseg", "run", "--model", model, "--no-show", "--quiet", "--reconnect", "0"]
    if mode == "one process":
        procs = [subprocess.Popen(base[:4] + urls + base[4:] + ["--output-dir", str(work), "--stats", str(work / "stats.json")])]
        stop_after(procs, seconds)
        doc = json.loads((work / "stats.json").read_text())
        return [per_camera(s, seconds, fps) for s in doc["sources"].values()]
    procs = [
        subprocess.Popen(base[:4] + [u] + base[4:] + ["--output", str(work / f"{k}.mp4"), "--stats", str(work / f"{k}.json")])
        for k, u in enumerate(urls)
    ]
    stop_after(procs, seconds)
    return [per_camera(json.loads((work / f"{k}.json").read_text()), seconds, fps) for k in range(len(urls))]


def camera_parser(doc: str, cameras: str, out: str) -> argparse.ArgumentParser:
    """The options every loopback-camera benchmark takes: the clip, how many cameras, their rate, the model."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--cameras", default=cameras)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--model", default="mnv2-050-lraspp-os32-240x320-voc-kd")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results" / out))
    return p


def summary(n: int, mode: str, per_camera: list[dict]) -> dict:
    """One row of a camera benchmark from its cameras' figures (fps, latency_p95_ms, keeps_up each)."""
    return {
        "cameras": n,
        "mode": mode,
        "total_fps": round(sum(c["fps"] for c in per_camera), 1),
        "per_camera_fps_median": round(statistics.median(c["fps"] for c in per_camera), 1),
        "latency_p95_ms_worst": round(max(c["latency_p95_ms"] or 0 for c in per_camera), 1),
        "keep_up": sum(c["keeps_up"] for c in per_camera),
        "per_camera": per_camera,
    }


def sweep(args, modes, measure) -> list[dict]:
    """For each camera count, the loopback cameras started once and every mode measured on them in turn:
    `measure(mode, urls, work_dir)` returns the cameras' figures, or a row of its own (a dict with "mode")."""
    rows = []
    for n in (int(x) for x in args.cameras.split(",")):
        cams = cameras(Path(args.video), n, args.fps)
        try:
            for mode in modes:
                with tempfile.TemporaryDirectory() as d:
                    got = measure(mode, [c.url for c in cams], Path(d))
                row = got if isinstance(got, dict) else summary(n, mode, got)
                rows.append(row)
                print(
                    f"{n} camera(s), {mode}: total {row['total_fps']} FPS, per camera {row['per_camera_fps_median']}, "
                    f"worst p95 {row['latency_p95_ms_worst']} ms, {row['keep_up']}/{n} keep up",
                    flush=True,
                )
        finally:
            for c in cams:
                c.stop()
    return rows


def main() -> None:
    args = camera_parser(__doc__, "1,2,4,8", "multi_source_cpu").parse_args()
    env = environment()
    rows = sweep(
        args,
        ("one process", "a process per camera"),
        lambda mode, urls, work: run_config(mode, urls, args.model, args.seconds, args.fps, work),
    )
    lines = [
        f"# N cameras at {args.fps:g} FPS: one process against a process per camera",
        "",
        header_markdown(env),
        f"- cameras: loopback MJPEG servers looping `{args.video}` at {args.fps:g} FPS; each run "
        f"{args.seconds:g} s, then SIGINT; model `{args.model}`, ONNX Runtime, overlays written (H.264 with the "
        "video extra)",
        "",
        "| cameras | mode | total FPS | per-camera FPS (median) | worst latency p95 ms | cameras keeping up (>= 90% of frames) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['cameras']} | {r['mode']} | {r['total_fps']} | {r['per_camera_fps_median']} | "
        f"{r['latency_p95_ms_worst']} | {r['keep_up']}/{r['cameras']} |"
        for r in rows
    ]
    write_report(args.out, lines, {**env, "rows": rows})


if __name__ == "__main__":
    main()
