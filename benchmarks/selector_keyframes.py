"""The selector with key-frame rungs: between the default's rate and the fastest model's, does it run a
better model on every Nth frame when that measured better, and does it hold the rate?

    python benchmarks/selector_keyframes.py [--video examples/camvid_0016E5.mp4] [--loop 50] [--targets 3]

1. `rtseg profile` (every rung measured on this machine: model, size, key-frame interval), then the
   candidates as the selector builds them (accuracy: held-out drive 0006R0, less the interval's drop on the
   15 Hz val sequence, both from the manifest).
2. The default model and the fastest model run alone on the video, every frame: their rates bound the targets
   (--targets of them, evenly spaced strictly between).
3. For each target, `rtseg run VIDEO --target-fps F`: which rung the selector started on, against the most
   accurate rung measured at >= F x 1.1 (the selector's own rule) and the most accurate every-frame one; the
   share of 1-second windows at or above F (the first second left out; every window is reachable, F being
   below the fastest model's measured rate on this very video).
Writes benchmarks/results/selector_keyframes_cpu.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402
from selector_bench import share_at_target  # noqa: E402

from rtseg.core.manifest import Manifest  # noqa: E402
from rtseg.runtime.pipeline import inference_layout  # noqa: E402
from rtseg.selection.start import models_for_task  # noqa: E402
from rtseg.selection.profiling import ensure_profiles  # noqa: E402
from rtseg.selection.ladder import build_candidates, choose, pareto_front  # noqa: E402

HERE = Path(__file__).resolve().parent
MARGIN = 1.1


def rtseg_run(args: list[str], tmp: Path) -> dict:
    js, st = tmp / "frames.jsonl", tmp / "stats.json"
    cmd = [sys.executable, "-m", "rtseg", "run", *args, "--no-show", "--quiet", "--json", str(js), "--stats", str(st)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"rtseg run failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return {
        "lines": [d for d in map(json.loads, open(js)) if "header" not in d],
        "stats": json.loads(st.read_text()),
        "load_on": None,
        "load_off": None,
        "command": "rtseg run " + " ".join(args) + " --no-show",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", default=str(HERE.parent / "examples" / "camvid_0016E5.mp4"))
    ap.add_argument("--loop", type=int, default=50, help="plays of the video per run (50: 5,050 frames, 20-60 s a run)")
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "selector_keyframes_cpu"))
    args = ap.parse_args()
    env = environment()
    subprocess.run([sys.executable, "-m", "rtseg", "profile"], check=True, capture_output=True)
    streams, threads = inference_layout(None, None, live=False)
    infos, split = models_for_task("seg")
    cands = build_candidates(infos, ensure_profiles(infos, "onnxruntime", streams, threads, split=split), "seg", split)
    every = [c for c in cands if c.keyframe == 1]
    default = next(c for c in every if c.name == Manifest.load().default)
    fastest = max(every, key=lambda c: c.fps)
    doc = {
        "environment": env,
        "split": split,
        "candidates": [{"name": c.name, "accuracy": c.accuracy, "fps_profiled": c.fps, "keyframe": c.keyframe} for c in cands],
        "ladder": [c.name for c in pareto_front(cands)],
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = [args.video, "--loop", str(args.loop)]
        rate = {
            c.name: rtseg_run(base + ["--model", c.info.name, "--input-size", "{}x{}".format(*c.input_size)], tmp)["stats"]["fps"]
            for c in (default, fastest)
        }
        doc["alone"] = rate
        lo, hi = rate[default.name], rate[fastest.name]
        targets = [round(lo + (hi - lo) * (i + 1) / (args.targets + 1)) for i in range(args.targets)]
        for f in targets:
            expected, _ = choose(cands, f, MARGIN)
            best_every, _ = choose(every, f, MARGIN)
            run = rtseg_run(base + ["--target-fps", str(f)], tmp)
            w = share_at_target(run, f)
            start = run["stats"]["selector_start"]
            r = {
                "target": f,
                "started_on": start,
                "expected": expected.name,
                "expected_accuracy": expected.accuracy,
                "best_every_frame": best_every.name,
                "best_every_frame_accuracy": best_every.accuracy,
                "propagated_is_better": expected.keyframe > 1 and expected.accuracy > best_every.accuracy,
                "fps": run["stats"]["fps"],
                "share_windows_at_target": w["share"],
                "windows": w["windows"],
                "switches": [(s["from"], s["to"]) for s in run["stats"]["switches"]],
                "frames_inferred": run["stats"]["frames_inferred"],
                "frames": run["stats"]["frames_out"],
                "command": run["command"],
            }
            doc["runs"].append(r)
            print(
                f"target {f}: started on {start} (expected {expected.name}; best every-frame {best_every.name}), "
                f"{w['share']:.0%} of {w['windows']} windows >= target, {r['fps']:.1f} FPS",
                flush=True,
            )
    lines = [
        "# The selector with key-frame rungs (CPU)",
        "",
        header_markdown(env),
        f"- video: `{Path(args.video).name}` x {args.loop} (a moving camera); accuracy ranked on {split}, "
        "a key-frame rung's less the drop its interval measured on the 15 Hz val sequence",
        f"- alone, every frame, on this video: default {default.name} {rate[default.name]:.1f} FPS, fastest {fastest.name} "
        f"{rate[fastest.name]:.1f} FPS; targets evenly between",
        "",
        "| target FPS | started on | most accurate rung at >= 1.1 x target | best every-frame rung | a propagated rung better? "
        "| run FPS | model ran on | 1-s windows >= target | switches |",
        "|---:|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in doc["runs"]:
        lines.append(
            f"| {r['target']} | {r['started_on']} | {r['expected']} ({100 * r['expected_accuracy']:.1f}) | "
            f"{r['best_every_frame']} ({100 * r['best_every_frame_accuracy']:.1f}) | "
            f"{'yes' if r['propagated_is_better'] else 'no'} | {r['fps']:.1f} | "
            f"{100 * r['frames_inferred'] / r['frames']:.0f} % | {100 * r['share_windows_at_target']:.0f} % of "
            f"{r['windows']} | {', '.join(f'{a} -> {b}' for a, b in r['switches']) or 'none'} |"
        )
    lines += ["", "Ladder (Pareto front, fastest first): " + ", ".join(f"`{n}`" for n in doc["ladder"])]
    write_report(args.out, lines, doc)


if __name__ == "__main__":
    main()
