"""Issue-17 fuzz run over the reader path: many damaged clips and images through `rtseg run`.

    python benchmarks/fuzz_inputs.py [--cases 400] [--seed 0] [--out benchmarks/results/fuzz_inputs]

Seeds and mutations are tests/mutations.py's (truncation, bit flips, zeroed/duplicated/deleted chunks,
corrupted headers, inserted garbage; 1-3 per case); the tiny nearest-centre model keeps each case to about
a second. Each case must either process every frame it reads (JSON lines = frames in = frames out = video
frames; exit 0, or 3 when the file ends before its announced length) or be refused in one `rtseg: error:`
line with exit 1: never a traceback, never a hang (60 s). Writes NAME.md and NAME.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from common import environment, header_markdown  # noqa: E402
from helpers import nearest_centre_onnx  # noqa: E402
from mutations import MUTATIONS, check_run, make_seeds, mutate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/fuzz_inputs"))
    args = p.parse_args()
    env, rng = environment(), random.Random(args.seed)
    outcomes, failures = Counter(), []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        seeds, model = make_seeds(tmp / "seeds"), nearest_centre_onnx(tmp / "model.onnx")
        for case in range(args.cases):
            src = rng.choice(seeds)
            ops = [(rng.choice(MUTATIONS), rng.random(), rng.random()) for _ in range(rng.randint(1, 3))]
            damaged = tmp / f"case{src.suffix}"
            damaged.write_bytes(mutate(src.read_bytes(), ops))
            outcome, problem = check_run(damaged, model, tmp / "out")
            outcomes[(src.suffix, outcome)] += 1
            if problem:
                failures.append({"case": case, "seed": src.name, "ops": ops, "outcome": outcome, "problem": problem})
                (tmp / "failed").mkdir(exist_ok=True)
                damaged.rename(tmp / "failed" / f"case{case}{src.suffix}")
            print(f"{case + 1:4d}/{args.cases} {src.name:9} {outcome:12} {problem}", flush=True)
    table = [
        "| seed | " + " | ".join(o for o in ("processed", "ended-early", "refused", "traceback", "hang")) + " |",
        "|---|" + "---:|" * 5,
    ]
    for suffix in sorted({s for s, _ in outcomes}):
        table.append(
            f"| seed{suffix} | "
            + " | ".join(str(outcomes[(suffix, o)]) for o in ("processed", "ended-early", "refused", "traceback", "hang"))
            + " |"
        )
    lines = [
        f"# Fuzz run over damaged input files: {args.cases} cases, {len(failures)} broke the contract",
        "",
        header_markdown(env),
        "",
        *table,
        "",
        "Contract: a run processes every frame it reads (JSON lines = frames in = frames out = frames in the "
        "output video) and exits 0, or 3 when the file ends before its announced length; or it refuses in one "
        "`rtseg: error:` line with exit 1. Never a traceback, never a hang (60 s).",
        "",
    ]
    lines += [f"- case {f['case']} ({f['seed']}, {f['ops']}): {f['outcome']}: {f['problem']}" for f in failures]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                **env,
                "cases": args.cases,
                "seed": args.seed,
                "outcomes": {f"{s} {o}": n for (s, o), n in outcomes.items()},
                "failures": failures,
            },
            indent=1,
        )
        + "\n"
    )
    print("\n".join(lines))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
