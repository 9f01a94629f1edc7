"""Issue-16 check: N live cameras watched through one server, in one process and over Ray camera workers.

    python benchmarks/serve_speed.py [--cameras 2,4,8] [--fps 15] [--seconds 20] [--workers 2]
                                     [--model mnv2-050-lraspp-os32-240x320-voc-kd] [--out DIR]

Each camera is a loopback MJPEG server looping vtest.avi at --fps (as in multi_source_speed.py). For each N:
`rtseg run URL1..URLN --serve` (one process, the many-sources pipeline), `rtseg serve --streams --no-ray`
(the same, through the serve command) and `rtseg serve --streams --workers W` (Ray camera workers, the
cameras dealt out between them). No files are written in any mode. After a warm-up of --warmup seconds
the numbers are read from /stats.json twice, --seconds apart: per-camera FPS is the frames written between
the two readings over the time between them (steady state, start-up excluded); latency is each camera's
p95 over its last frames at the second reading. A camera keeps up at >= 90% of --fps.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from common import environment, header_markdown, write_report  # noqa: E402
from multi_source_speed import camera_parser, summary, sweep  # noqa: E402


def read_stats(url: str) -> tuple[float, dict]:
    with urllib.request.urlopen(url + "stats.json", timeout=30) as r:
        return time.monotonic(), json.loads(r.read())


def served_url(proc: subprocess.Popen, marker: str) -> str:
    for line in proc.stderr:
        if marker in line:
            return line.split(" on ", 1)[1].split()[0] if "live view" in line else line.strip().rsplit(" on ", 1)[1]
    raise RuntimeError("the command ended before serving")


def measure(mode: str, urls: list[str], args, work: Path) -> dict:
    streams = work / "cams.txt"
    streams.write_text("".join(f"c{k} = {u}\n" for k, u in enumerate(urls)))
    common = ["--model", args.model, "--backend", "onnxruntime", "--reconnect", "0"]
    if mode == "rtseg run --serve":
        cmd = ["run", *urls, *common, "--serve", "127.0.0.1:0", "--no-show", "--quiet"]
        marker = "rtseg: live view"  # one source says "live view on URL", several "live view of every source on URL"
    elif mode == "rtseg serve --no-ray":
        cmd = ["serve", "--streams", str(streams), *common, "--listen", "127.0.0.1:0", "--no-ray"]
        marker = "rtseg: serving "
    else:
        cmd = ["serve", "--streams", str(streams), *common, "--listen", "127.0.0.1:0", "--workers", str(args.workers)]
        marker = "rtseg: serving "
    if mode == "rtseg run --serve":
        cmd.remove("--quiet")  # the address is on an info line
    proc = subprocess.Popen([sys.executable, "-m", "rtseg", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = served_url(proc, marker)
        time.sleep(args.warmup)
        t1, first = read_stats(url)
        time.sleep(args.seconds)
        t2, second = read_stats(url)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    per = []
    for label, s in second["sources"].items():
        fps = ((s.get("frames_out") or 0) - (first["sources"][label].get("frames_out") or 0)) / (t2 - t1)
        per.append(
            {
                "label": label,
                "fps": round(fps, 2),
                "latency_p95_ms": s.get("latency_ms_p95"),
                "keeps_up": fps >= 0.9 * args.fps,
                "worker": (s.get("worker") or {}).get("pid"),
            }
        )
    return summary(len(urls), mode, per) | {"workers": len({c["worker"] for c in per if c["worker"]}) or 1}


def main() -> None:
    p = camera_parser(__doc__, "2,4,8", "serve_cpu")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    env = environment()
    modes = ("rtseg run --serve", "rtseg serve --no-ray", f"rtseg serve, Ray, {args.workers} workers")
    rows = sweep(args, modes, lambda mode, urls, work: measure(mode, urls, args, work))
    lines = [
        f"# N live cameras at {args.fps:g} FPS behind one server: one process, and Ray camera workers",
        "",
        header_markdown(env),
        f"- cameras: loopback MJPEG servers looping `{args.video}` at {args.fps:g} FPS; model `{args.model}`, "
        f"ONNX Runtime, no files written; FPS = frames written between two /stats.json readings {args.seconds:g} s "
        f"apart, after {args.warmup:g} s of warm-up; latency = each camera's p95 over its last frames",
        "",
        "| cameras | mode | workers | total FPS | per-camera FPS (median) | worst latency p95 ms | keeping up (>= 90%) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['cameras']} | {r['mode']} | {r['workers']} | {r['total_fps']} | {r['per_camera_fps_median']} | "
        f"{r['latency_p95_ms_worst']} | {r['keep_up']}/{r['cameras']} |"
        for r in rows
    ]
    write_report(args.out, lines, {**env, "rows": rows})


if __name__ == "__main__":
    main()
