"""Issue-12 check: the pipeline's end-to-end speed before and after a code change, interleaved in one run.

    python benchmarks/refactor_speed.py --before /tmp/before --repeats 5 [--model NAME ...] [--backend null]
        [--codec mp4v|h264]

`--before` is a checkout of the older commit (`git worktree add /tmp/before REV`). Each repeat runs
`rtseg run VIDEO --no-show --output OUT.mp4` once from the older tree and once from this one, alternating,
so machine noise hits both alike; reports the median FPS of each, the ratio and the spread (min-max),
and the median CPU seconds (user + sys of the run, start-up included), which this VM's varying speed
moves less than FPS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown  # noqa: E402

HERE = Path(__file__).resolve().parent


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(tree: Path, model: str, video: str, tmp: Path, extra: list[str]) -> tuple[float, float]:
    """(FPS from --stats, CPU seconds of the whole run)."""
    stats = tmp / "stats.json"
    cpu0 = children_cpu()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtseg",
            "run",
            video,
            "--model",
            model,
            "--no-show",
            "--output",
            str(tmp / "out.mp4"),
            "--stats",
            str(stats),
            "--quiet",
            "--overwrite",
            *extra,
        ],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise SystemExit(f"{tree}: rtseg run failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(stats.read_text())["fps"], children_cpu() - cpu0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="checkout of the older commit")
    p.add_argument("--model", action="append", help="model name (repeatable; default: the default model)")
    p.add_argument("--video", default=str(HERE.parent.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--backend", default="auto", help="null: the pipeline alone (an instant stand-in model)")
    p.add_argument("--codec", choices=["mp4v", "h264"], default="mp4v", help="the output video's writer")
    p.add_argument("--out", default=str(HERE / "results" / "refactor_speed.md"))
    args = p.parse_args()
    extra = ["--backend", args.backend, "--codec", args.codec]
    trees = {"before": Path(args.before).resolve(), "after": HERE.parent}
    models = args.model or [json.loads((HERE.parent / "engines" / "manifest.json").read_text())["default"]]
    env = environment()
    md = [
        f"# End-to-end speed before and after a change (rtseg run --no-show --output, backend {args.backend})",
        "",
        header_markdown(env),
        f"- before: `{trees['before']}`; video `{args.video}`; {args.repeats} repeats, "
        f"interleaved; backend {args.backend}, output {args.codec}",
        "",
        "| model | before FPS (median, min-max) | after FPS (median, min-max) | after / before | before CPU s | after CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as d:
        for model in models:
            fps, cpu = {"before": [], "after": []}, {"before": [], "after": []}
            for r in range(args.repeats):
                for k, tree in trees.items():
                    f, c = run_once(tree, model, args.video, Path(d), extra)
                    fps[k].append(f)
                    cpu[k].append(c)
                print(f"{model} repeat {r + 1}: before {fps['before'][-1]:.1f}  after {fps['after'][-1]:.1f} FPS", flush=True)
            med = {k: statistics.median(v) for k, v in fps.items()}
            md.append(
                f"| {model} | {med['before']:.1f} ({min(fps['before']):.1f}-{max(fps['before']):.1f}) | "
                f"{med['after']:.1f} ({min(fps['after']):.1f}-{max(fps['after']):.1f}) | {med['after'] / med['before']:.3f} "
                f"| {statistics.median(cpu['before']):.2f} | {statistics.median(cpu['after']):.2f} |"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
