"""How soon the first frame comes with `--target-fps` on first use, and where a rerun starts.

Each round, interleaved: `rtseg run CLIP --target-fps F --json` with a fresh profile cache, once with the shipped
reference speeds (one probe scaled, the chosen model probed) and once without them (every model x size timed,
as before reference speeds shipped: a copy of engines/ without speeds.json); then the same command again on
the first cache (a rerun: it starts where that run settled). Seconds from the command to the first frame line
of the JSON output, medians and spread over the rounds.

    python benchmarks/selector_start.py --rounds 5 --out benchmarks/results/selector_start_cpu
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402

from rtseg.core.paths import ENGINES_DIR  # noqa: E402
from rtseg.selection.reference import REFERENCE_FILE  # noqa: E402


def engines_without_reference(folder: Path) -> Path:
    """engines/ as links, less the reference speeds."""
    folder.mkdir()
    for f in ENGINES_DIR.iterdir():
        if f.name != REFERENCE_FILE:
            (folder / f.name).symlink_to(f.resolve())
    return folder


def first_frame(clip: str, target: float, cache: Path, work: Path, engines: Path | None = None) -> tuple[float, str]:
    """Seconds to the first frame line, and the selector's line."""
    env = dict(os.environ, RTSEG_CACHE_DIR=str(cache))
    if engines is not None:
        env["RTSEG_ENGINES_DIR"] = str(engines)
    out = Path(tempfile.mkdtemp(dir=work))
    lines = out / "frames.jsonl"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["rtseg", "run", clip, "--target-fps", str(target), "--no-show", "--json", str(lines), "--output", str(out / "out.mp4")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = float("nan")
    while proc.poll() is None:
        if lines.exists() and len(lines.read_text().splitlines()) >= 2:  # the header, then the first frame
            seconds = time.perf_counter() - t0
            break
        time.sleep(0.01)
    _, err = proc.communicate()
    if proc.returncode:
        sys.exit(f"rtseg run failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    why = next((line for line in err.splitlines() if "selector: " in line and "kept this run" not in line), "")
    return seconds, why.split("selector: ", 1)[-1][:160]


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(Path(__file__).resolve().parents[1] / "examples" / "camvid_0016E5.mp4"))
    ap.add_argument("--target-fps", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/selector_start_cpu")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile, said beside the figures")
    args = ap.parse_args()
    results: dict[str, list[float]] = {"reference": [], "every variant timed": [], "rerun": []}
    choices: dict[str, list[str]] = {k: [] for k in results}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bare = engines_without_reference(work / "engines")
        for r in range(args.rounds):
            cache = work / f"cache-{r}"
            for kind, engines, c in (("reference", None, cache), ("every variant timed", bare, work / f"bare-{r}"), ("rerun", None, cache)):
                s, why = first_frame(args.clip, args.target_fps, c, work, engines)
                results[kind].append(s)
                choices[kind].append(why)
                print(f"round {r + 1} {kind}: {s:.2f} s  {why}", flush=True)
    env = environment()
    lines = [
        f"# First frame with --target-fps {args.target_fps:g}, first use and rerun",
        "",
        header_markdown(env),
        f"- clip: {Path(args.clip).name}; {args.rounds} rounds, interleaved" + (f"; {args.note}" if args.note else ""),
        "",
        "| start | first frame: median (min-max) | first round's choice |",
        "|---|---:|---|",
    ]
    lines += [f"| {k} | {spread(v)} | {choices[k][0]} |" for k, v in results.items()]
    lines += [
        "",
        "reference: fresh cache, shipped reference speeds (one probe scaled, the chosen model probed); every "
        "variant timed: fresh cache, engines/ without speeds.json; rerun: the reference run's cache again.",
    ]
    write_report(
        args.out, lines, {"environment": env, "note": args.note, "target_fps": args.target_fps, "seconds": results, "choices": choices}
    )


if __name__ == "__main__":
    main()
