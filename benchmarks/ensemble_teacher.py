"""Is an ensemble of teachers a better teacher? Each checkpoint alone and all of them averaged (the mean of
their class distributions, what `rtseg train --distill A --distill B` distils from), on a split held out of
every one's training, all at one input size.

    python benchmarks/ensemble_teacher.py --data ../shared/data/camvid --split holdout:0006R0 \\
        runs/teachers/edgetpu-075-dlv3-os16-360x480-cityscapes.pt engines/mnv2-100-dlv3p-os16-360x480-voc.pt \\
        --out benchmarks/results/ensemble_teacher_cpu

Class maps are scored at the label's resolution (logits resized bilinearly before the argmax), as the
teachers' distributions are averaged in training; figures can differ from `rtseg eval` on the exported
file by a few tenths (that resizes the class map instead).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402

from rtseg.data.camvid import CLASSES, eval_pairs, read_image_rgb, read_label, split_description  # noqa: E402
from rtseg.evaluation.metrics import ConfusionMatrix  # noqa: E402
from rtseg.models import ModelSpec, build_model, parse_size  # noqa: E402


def load(path: str) -> tuple[torch.nn.Module, ModelSpec]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    spec = ModelSpec.from_dict(ck["spec"])
    model = build_model(spec)
    model.load_state_dict(ck["model"])
    return model.eval(), spec


def probabilities(
    model: torch.nn.Module, spec: ModelSpec, rgb: np.ndarray, size: tuple[int, int], label_shape: tuple[int, int]
) -> torch.Tensor:
    x = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    x = (x - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    out = model(torch.from_numpy(x.transpose(2, 0, 1)).unsqueeze(0))
    out = out if torch.is_tensor(out) else out["logits"]
    return torch.nn.functional.interpolate(out, size=label_shape, mode="bilinear", align_corners=False).softmax(1)[0]


def score_row(name: str, cm: ConfusionMatrix, **columns) -> dict:
    """A row of the report: the model's name, `columns` (e.g. its input size), mIoU and the IoU per class."""
    per_class = {c: round(float(v) * 100, 1) for c, v in zip(CLASSES, cm.iou())}
    return {"model": name, **columns, "miou": round(cm.miou() * 100, 2), "per_class_iou": per_class}


def iou_table(rows: list[dict], columns: tuple[str, ...] = ()) -> list[str]:
    """The rows as a markdown table: model, `columns`, mIoU, then one column per class."""
    lines = ["| model | " + "".join(f"{c} | " for c in columns) + "mIoU | " + " | ".join(CLASSES) + " |"]
    lines.append("|---|" + "---|" * len(columns) + "---:|" + "---:|" * len(CLASSES))
    for r in rows:
        cells = [r["model"], *(str(r[c]) for c in columns), f"{r['miou']:.2f}", *(f"{r['per_class_iou'][c]:.1f}" for c in CLASSES)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="rtseg checkpoints (best.pt or a shipped NAME.pt)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="holdout:0006R0")
    ap.add_argument("--input-size", default="360x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/ensemble_teacher_cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    size = parse_size(args.input_size)
    models = [load(c) for c in args.checkpoints]
    names = [Path(c).stem if Path(c).stem not in ("best", "last") else Path(c).parent.name for c in args.checkpoints]
    matrices = [ConfusionMatrix(len(CLASSES)) for _ in range(len(models) + 1)]
    pairs = eval_pairs(args.data, args.split)
    with torch.no_grad():
        for image_path, label_path in pairs:
            rgb, label = read_image_rgb(image_path), read_label(label_path)
            probs = [probabilities(m, spec, rgb, size, label.shape) for m, spec in models]
            for p, cm in zip(probs, matrices):
                cm.update(label, p.argmax(0).numpy())
            matrices[-1].update(label, (sum(probs) / len(probs)).argmax(0).numpy())
    env = environment()
    rows = [score_row(n, cm) for n, cm in zip(names + ["ensemble (mean of distributions)"], matrices)]
    lines = ["# Teachers alone and as an ensemble", "", header_markdown(env)]
    lines += [f"- split: {split_description(args.split)} ({len(pairs)} frames), input {args.input_size}", ""]
    lines += iou_table(rows)
    write_report(args.out, lines, {"environment": env, "split": args.split, "input_size": args.input_size, "rows": rows})


if __name__ == "__main__":
    main()
