"""`rtseg eval`: per-class IoU, mIoU and pixel accuracy of a model on a CamVid-layout split.

The model runs exactly as in `rtseg run` (same preprocessing, same backend); predictions are compared at
the label's resolution (nearest resize), in one confusion matrix over the split, void ignored.
"""
from __future__ import annotations

import datetime as dt
import platform

import cv2
import numpy as np
from tqdm import tqdm

from .backends import Backend
from .data.camvid import read_label, split_pairs
from .errors import RtsegError
from .metrics import ConfusionMatrix
from .modelinfo import ModelInfo
from .postprocess import class_map
from .preprocess import Preprocessor


def evaluate_segmentation(info: ModelInfo, backend: Backend, data: str, split: str = "val",
                          input_size: tuple[int, int] | None = None, progress: bool = True) -> dict:
    try:
        pairs = split_pairs(data, split)
    except FileNotFoundError as e:
        raise RtsegError(str(e)) from e
    size = input_size or info.input_size
    pre = Preprocessor(size, info.mean, info.std, pool_size=1)
    buf = np.empty((1, 3, *size), np.float32)
    cm = ConfusionMatrix(len(info.classes))
    for img_path, lab_path in tqdm(pairs, desc=f"eval {info.name} on {split}", unit="img", disable=not progress, leave=False):
        img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if img is None:
            raise RtsegError(f"cannot read image {img_path}")
        label = read_label(lab_path)
        pred = class_map(backend.infer(pre(img, out=buf)))
        if pred.shape != label.shape:
            pred = cv2.resize(pred, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_NEAREST)
        cm.update(label, pred)
    iou = cm.iou()
    return {
        "model": info.name,
        "split": split,
        "images": len(pairs),
        "input_size": list(size),
        "miou": cm.miou(),
        "pixel_accuracy": cm.pixel_accuracy(),
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(info.classes, iou)},
        "backend": backend.name,
        "machine": f"{platform.node() and platform.machine()} {cpu_name()}",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_report(r: dict) -> str:
    lines = [f"{r['model']} on {r['split']} ({r['images']} images, input {r['input_size'][0]}x{r['input_size'][1]}, {r['backend']})"]
    for name, v in r["per_class_iou"].items():
        lines.append(f"  {name:<12} IoU {'   n/a' if v is None else f'{100 * v:6.2f}'}")
    lines.append(f"  {'mIoU':<12}     {100 * r['miou']:6.2f}")
    lines.append(f"  {'pixel acc':<12}     {100 * r['pixel_accuracy']:6.2f}")
    return "\n".join(lines)
