"""Issue-17 soak: does `rtseg run` on a live stream hold steady for half an hour, outages included?

    python benchmarks/soak.py [--video ../shared/data/video/vtest.avi] [--minutes 30] [--fps 30]
                              [--outage-every 300] [--out benchmarks/results/soak_cpu]

A loopback MJPEG camera (this script) plays VIDEO in a loop at --fps and, every --outage-every seconds,
drops its viewers and refuses connections for 3 s, so the run reconnects a few times. `rtseg run` reads it
with the default model, writing an overlay video, JSON lines and serving its live view, with
`--reconnect forever`. Every 10 s the run's resident memory, open file descriptors and threads are read
from /proc. After --minutes the run gets SIGINT (Ctrl-C) and must end with exit 130 and its summary.
Pass/fail: RSS growth after the warm-up (the first 3 minutes) at most 50 MB, fds and threads back to their
post-warm-up range, every outage reported as a gap. Writes NAME.md, NAME.json and NAME.png under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from common import environment, header_markdown  # noqa: E402

SAMPLE_S = 10.0
WARMUP_S = 180.0
OUTAGE_S = 3.0
RSS_GROWTH_LIMIT_MB = 50.0


def looping_camera(video: Path, fps: float):
    """The tests' loopback MJPEG camera (tests/helpers.py) serving VIDEO's frames, pre-encoded, in a loop."""
    from helpers import MjpegServer

    cap, jpegs = cv2.VideoCapture(str(video)), []
    while (ok_frame := cap.read())[0]:
        jpegs.append(cv2.imencode(".jpg", ok_frame[1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    cap.release()
    if not jpegs:
        raise SystemExit(f"soak: cannot read {video}")
    return MjpegServer(fps, jpeg_for=lambda i: jpegs[i % len(jpegs)])


def outage(cam, outages: list[float], t0: float) -> None:
    """Drop every viewer and refuse connections for OUTAGE_S, then serve again on the same port."""
    outages.append(round(time.time() - t0, 1))
    cam.stop()
    time.sleep(OUTAGE_S)
    cam.start()


def sample(pid: int) -> dict | None:
    """RSS (MB), open fds and threads of `pid`, from /proc; None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return {"rss_mb": rss_kb / 1024, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": len(os.listdir(f"/proc/{pid}/task"))}
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verdict(samples: list[dict], gaps: int, outages: int, warmup_s: float = WARMUP_S) -> dict:
    """The pass/fail figures: growth after the warm-up, the fd and thread ranges, the outages seen."""
    after = [s for s in samples if s["t"] >= warmup_s]
    if len(after) < 3:
        return {"ok": False, "why": "run too short for a verdict (need samples after the warm-up)"}
    rss = np.array([s["rss_mb"] for s in after])
    t_h = np.array([s["t"] for s in after]) / 3600
    slope = float(np.polyfit(t_h, rss, 1)[0]) if len(after) > 2 else 0.0
    # growth: the last few samples against the first few after warm-up (medians: allocator noise)
    growth = float(np.median(rss[-3:]) - np.median(rss[:3]))
    fds, threads = [s["fds"] for s in after], [s["threads"] for s in after]
    first_fds, first_threads = fds[:3], threads[:3]
    result = {
        "rss_after_warmup_mb": round(float(np.median(rss[:3])), 1),
        "rss_end_mb": round(float(np.median(rss[-3:])), 1),
        "rss_max_mb": round(float(rss.max()), 1),
        "rss_growth_mb": round(growth, 1),
        "rss_slope_mb_per_hour": round(slope, 1),
        "fds_range": [min(fds), max(fds)],
        "fds_end_vs_start": [fds[-1], max(first_fds)],
        "threads_range": [min(threads), max(threads)],
        "threads_end_vs_start": [threads[-1], max(first_threads)],
        "gaps_reported": gaps,
        "outages": outages,
    }
    result["ok"] = bool(
        growth <= RSS_GROWTH_LIMIT_MB and fds[-1] <= max(first_fds) and threads[-1] <= max(first_threads) and gaps >= outages
    )
    return result


def plot(samples: list[dict], outages: list[float], path: Path, warmup_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
    for ax, key, label in zip(axes, ("rss_mb", "fds", "threads"), ("RSS (MB)", "open fds", "threads")):
        ax.plot(t, [s[key] for s in samples], lw=1.2)
        ax.set_ylabel(label)
        for o in outages:
            ax.axvline(o / 60, color="tab:red", alpha=0.3, lw=1)
        ax.axvspan(0, warmup_s / 60, color="grey", alpha=0.12)
    axes[0].set_title("rtseg run on a looping loopback camera (red: camera outages, grey: warm-up)")
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--outage-every", type=float, default=300.0, help="seconds between camera outages")
    p.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds before growth is counted")
    p.add_argument("--model", default=None, help="default: the shipped default model")
    p.add_argument("--work", default="/tmp/rtseg-soak", help="where the run's outputs go (large)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/soak_cpu"))
    args = p.parse_args()
    env = environment()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cam, outages = looping_camera(Path(args.video), args.fps), []
    cam.start()
    serve_port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "rtseg",
        "run",
        cam.url,
        "--no-show",
        "--reconnect",
        "forever",
        "--output",
        str(work / "soak.mp4"),
        "--json",
        str(work / "soak.jsonl"),
        "--stats",
        str(work / "stats.json"),
        "--serve",
        f"127.0.0.1:{serve_port}",
        "--quiet",
    ] + (["--model", args.model] if args.model else [])
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, stderr=open(work / "stderr.txt", "w"))
    samples, next_outage, end = [], t0 + args.outage_every, t0 + args.minutes * 60
    while time.time() < end and proc.poll() is None:
        time.sleep(SAMPLE_S - (time.time() - t0) % SAMPLE_S)
        if (s := sample(proc.pid)) is not None:
            samples.append({"t": round(time.time() - t0, 1), **s})
            print(f"{samples[-1]['t']:7.0f}s  rss {s['rss_mb']:7.1f} MB  fds {s['fds']:3d}  threads {s['threads']:3d}", flush=True)
        if time.time() >= next_outage and time.time() < end - 60:
            threading.Thread(target=outage, args=(cam, outages, t0), daemon=True).start()
            next_outage += args.outage_every
    early = proc.poll()
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed after 30 s"
    cam.stop()
    stats = json.loads((work / "stats.json").read_text()) if (work / "stats.json").exists() else {}
    gaps = len(stats.get("gaps", []))
    result = {
        **env,
        "video": args.video,
        "camera_fps": args.fps,
        "minutes": args.minutes,
        "frames_sent": cam.sent,
        "exit_code": rc,
        "ended_before_sigint": early is not None,
        "summary": {k: stats.get(k) for k in ("frames_in", "frames_out", "dropped", "fps", "seconds")},
        "gaps": stats.get("gaps", []),
        "camera_outages_s": outages,
        "verdict": verdict(samples, gaps, len(outages), args.warmup),
        "samples": samples,
    }
    result["verdict"]["ok"] = bool(result["verdict"].get("ok") and rc == 130 and early is None)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    plot(samples, outages, out.with_suffix(".png"), args.warmup)
    v = result["verdict"]
    lines = [
        f"# Soak: `rtseg run` on a looping loopback camera for {args.minutes:g} minutes",
        "",
        header_markdown(env),
        f"- camera: {args.video} looped at {args.fps:g} FPS over loopback MJPEG, an outage of {OUTAGE_S:g} s every {args.outage_every:g} s",
        f"- run: `{' '.join(cmd[1:])}`",
        "",
        f"**{'PASS' if v.get('ok') else 'FAIL'}** (RSS growth after the {args.warmup / 60:.3g}-minute warm-up "
        f"≤ {RSS_GROWTH_LIMIT_MB:g} MB, fds and threads not above their post-warm-up level, every outage "
        "reported, exit 130 on SIGINT)",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {val} |" for k, val in v.items() if k != "ok"]
    lines += [
        f"| frames sent / read / written / dropped | {cam.sent} / {stats.get('frames_in')} / "
        f"{stats.get('frames_out')} / {stats.get('dropped')} |",
        f"| exit code | {rc} |",
        "",
        f"![RSS, fds and threads over time]({out.with_suffix('.png').name})",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
