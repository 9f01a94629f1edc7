"""Issue-3 comparison: one multi-task model (class map + boxes, one backbone) vs the two single-task models.

    python benchmarks/multitask.py --multi mnv2-050-lraspp+centernet-os32-240x320-voc \
        --seg mnv2-050-lraspp-os32-240x320-voc-kd --det mnv2-050-centernet-os16-240x320-voc

Accuracy: the manifest's val mIoU / mAP, each measured by `rtseg eval` on the shipped file. Speed, in one
run on this machine: model-only FPS (ONNX Runtime, batch 1, medians) of the multi-task model, of each
single-task model, and of the pair run one after the other on every frame (what a user needing both
would do without the multi-task model). Writes benchmarks/results/multitask_cpu.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown  # noqa: E402

from rtseg.backends import load_backend  # noqa: E402
from rtseg.evaluation.bench import fmt, measure_model_only  # noqa: E402
from rtseg.core.modelinfo import resolve_model  # noqa: E402

HERE = Path(__file__).resolve().parent


class Pair:
    """Both single-task models on the same frame, one after the other."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def infer(self, x: np.ndarray) -> dict:
        return {**self.a.infer(x), **self.b.infer(x)}


def accuracy(info) -> tuple[float | None, float | None, float | None]:
    m = info.entry.get("metrics", {}).get("camvid_val", {})
    det = m.get("detection") or {}
    return m.get("miou"), det.get("map50"), det.get("map")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--multi", required=True)
    p.add_argument("--seg", required=True)
    p.add_argument("--det", required=True)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    env = environment()
    infos = {k: resolve_model(getattr(args, k)) for k in ("multi", "seg", "det")}
    sizes = {tuple(i.input_size) for i in infos.values()}
    if len(sizes) != 1:
        sys.exit(f"the three models must share one input size, got {sorted(sizes)}")
    x = np.random.default_rng(0).standard_normal((1, 3, *sizes.pop())).astype(np.float32)
    # no spinning: two spinning sessions in one process would steal each other's cores in the pair
    backends = {k: load_backend("onnxruntime", str(i.path), spin=False) for k, i in infos.items()}
    runs = {"multi": backends["multi"], "seg": backends["seg"], "det": backends["det"], "seg + det": Pair(backends["seg"], backends["det"])}
    names = {
        "multi": infos["multi"].name,
        "seg": infos["seg"].name,
        "det": infos["det"].name,
        "seg + det": f"{infos['seg'].name} then {infos['det'].name}",
    }
    acc = {k: accuracy(i) for k, i in infos.items()}
    acc["seg + det"] = (acc["seg"][0], *acc["det"][1:])
    rows = []
    for label, b in runs.items():
        m = measure_model_only(b, x, args.iters, args.reps)
        miou, map50, map_ = acc[label]
        rows.append(
            {
                "what": label,
                "models": names[label],
                "fps": m["fps"],
                "ms_p50": m["ms_p50"],
                "ms_p95": m["ms_p95"],
                "miou": miou,
                "map50": map50,
                "map": map_,
            }
        )
        print(f"{label}: {m['fps']:.1f} FPS", flush=True)

    def pct(v: float | None) -> str:
        return fmt(v, scale=100)

    md = [
        "# One multi-task model vs two single-task models (2-core CPU, ONNX Runtime)",
        "",
        header_markdown(env),
        f"- model-only, batch 1, {args.reps} x {args.iters} inferences, median; accuracy: the manifest's "
        "`rtseg eval` numbers on CamVid val (boxes derived from the label maps)",
        "",
        "| what | models | model FPS | p50 ms | p95 ms | val mIoU | val AP@0.5 | val AP@[.5:.95] |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {r['what']} | {r['models']} | {r['fps']:.1f} | {r['ms_p50']:.2f} | {r['ms_p95']:.2f} | {pct(r['miou'])} "
        f"| {pct(r['map50'])} | {pct(r['map'])} |"
        for r in rows
    ]
    fps = {r["what"]: r["fps"] for r in rows}
    md += ["", f"- multi-task / (seg then det): {fps['multi'] / fps['seg + det']:.2f}x the frame rate"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "multitask_cpu.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    (out / "multitask_cpu.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
