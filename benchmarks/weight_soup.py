"""Is a weight average of two fine-tunes of one start a better model? ("model soup": Wortsman et al., 2022.)
Each checkpoint alone and their parameter averages at the given weights, on a split held out of every one's
training, at each input size.

    python benchmarks/weight_soup.py --data ../shared/data/camvid --split holdout:0006R0 \\
        engines/mnv2-100-dlv3p-os16-288x384-voc.pt engines/mnv2-100-dlv3p-os16-360x480-voc.pt \\
        --weights 0.5 0.3 --sizes 360x480 288x384 --out benchmarks/results/weight_soup_cpu

The two shipped DeepLabV3+ width-1.0 models qualify: both descend from the same 288x384 cross-entropy stage (the
360x480 one refined from it), so their weights lie in one basin. Batch-norm statistics are averaged with the
weights (no re-estimation). Class maps are scored at the label's resolution, as in ensemble_teacher.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402
from ensemble_teacher import iou_table, load, probabilities, score_row  # noqa: E402

from rtseg.data.camvid import CLASSES, eval_pairs, read_image_rgb, read_label, split_description  # noqa: E402
from rtseg.evaluation.metrics import ConfusionMatrix  # noqa: E402
from rtseg.models import parse_size  # noqa: E402


def soup(a: torch.nn.Module, b: torch.nn.Module, w: float, template: str) -> torch.nn.Module:
    """w * a + (1 - w) * b, parameter by parameter (integer buffers, BN's batch counters, taken from b)."""
    model, _ = load(template)
    sa, sb = a.state_dict(), b.state_dict()
    model.load_state_dict(
        {k: (w * sa[k].float() + (1 - w) * sb[k].float()).to(sa[k].dtype) if sa[k].is_floating_point() else sb[k] for k in sa}
    )
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs=2, help="two rtseg checkpoints of one architecture (A, B)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="holdout:0006R0")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.5], help="A's share in each soup")
    ap.add_argument("--sizes", nargs="+", default=["360x480"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/weight_soup_cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    (a, spec), (b, _) = load(args.checkpoints[0]), load(args.checkpoints[1])
    names = [Path(c).stem for c in args.checkpoints]
    models = {names[0]: a, names[1]: b} | {f"soup {w:g} A + {1 - w:g} B": soup(a, b, w, args.checkpoints[1]) for w in args.weights}
    pairs = eval_pairs(args.data, args.split)
    rows = []
    for size_text in args.sizes:
        size = parse_size(size_text)
        matrices = {n: ConfusionMatrix(len(CLASSES)) for n in models}
        with torch.no_grad():
            for image_path, label_path in pairs:
                rgb, label = read_image_rgb(image_path), read_label(label_path)
                for n, m in models.items():
                    matrices[n].update(label, probabilities(m, spec, rgb, size, label.shape).argmax(0).numpy())
        rows += [score_row(n, cm, input_size=size_text) for n, cm in matrices.items()]
        print(size_text, {r["model"]: r["miou"] for r in rows if r["input_size"] == size_text}, flush=True)
    env = environment()
    lines = ["# Weight soups of two fine-tunes", "", header_markdown(env)]
    lines += [f"- split: {split_description(args.split)} ({len(pairs)} frames); A = {names[0]}, B = {names[1]}", ""]
    lines += iou_table(rows, ("input_size",))
    write_report(args.out, lines, {"environment": env, "split": args.split, "checkpoints": args.checkpoints, "rows": rows})


if __name__ == "__main__":
    main()
