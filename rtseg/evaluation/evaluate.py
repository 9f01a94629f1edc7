"""`rtseg eval`: per-class IoU, mIoU and pixel accuracy of a model on a CamVid-layout split.

The model runs exactly as in `rtseg run` (same preprocessing, same backend); predictions are compared at
the label's resolution (nearest resize), in one confusion matrix over the split, void ignored.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

import cv2
import numpy as np
from tqdm import tqdm

from ..core.errors import RtsegError
from ..core.machine import machine_description
from ..core.tasks import has_det, has_seg, normalize_task
from ..data.boxes import boxes_from_label
from ..data.camvid import eval_pairs, read_label, split_description
from ..runtime.slot import ModelSlot
from .detmetrics import coco_map, require_pycocotools
from .metrics import ConfusionMatrix



def evaluate(slot: ModelSlot, data: str, split: str = "val", task: str | None = None, progress: bool = True,
             max_images: int | None = None) -> dict:
    """Metrics of a loaded model on a CamVid-layout split (`eval_pairs` names them), as a report that says
    what was measured: model, split, images, input size, backend, machine and date."""
    try:
        pairs = eval_pairs(data, split)[:max_images]
    except FileNotFoundError as e:
        raise RtsegError(str(e)) from e

    def samples():
        for img_path, lab_path in pairs:
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if img is None:
                raise RtsegError(f"cannot read image {img_path}")
            yield img, read_label(lab_path)

    bar = tqdm(samples(), total=len(pairs), desc=f"eval {slot.name} on {split}", unit="img", disable=not progress, leave=False)
    report = {"model": slot.info.name, "split": split, "split_note": split_description(split), "images": len(pairs),
              "input_size": list(slot.input_size), "backend": slot.backend.name, "machine": machine_description(),
              "date": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    return report | measure(slot, bar, task)


def measure(slot: ModelSlot, samples: Iterable[tuple[np.ndarray, np.ndarray]], task: str | None = None) -> dict:
    """Segmentation metrics (one confusion matrix, void ignored) and/or box AP (boxes derived from labels)
    of (BGR frame, label map) pairs, each run through `slot.process` exactly as `rtseg run` runs it.

    One forward pass per image serves both, so a multi-task model is measured exactly as it runs.
    """
    info = slot.info
    task = normalize_task(task or info.task)  # by default, what the model predicts
    want_seg, want_det = has_seg(task), has_det(task)
    if want_det and not info.det_classes:
        raise RtsegError(f"model {info.name} has no box head: use --task seg")
    if want_seg and info.task == "det":
        raise RtsegError(f"model {info.name} predicts boxes only: use --task det")
    if want_det:
        require_pycocotools()
    h, w = slot.input_size
    cm = ConfusionMatrix(len(info.classes))
    gts, preds = [], []
    for img, label in samples:
        p = slot.process(img)
        if want_seg:
            pred = p.mask
            if pred.shape != label.shape:
                pred = cv2.resize(pred, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_NEAREST)
            cm.update(label, pred)
        if want_det:
            # every box the model gives, unthresholded: AP sweeps the score threshold itself
            gts.append(boxes_from_label(label))
            scale = np.array([label.shape[1] / w, label.shape[0] / h] * 2, np.float32)
            preds.append((p.outputs["boxes"][0] * scale, p.outputs["scores"][0], p.outputs["labels"][0]))
    report: dict = {}
    if want_seg:
        iou = cm.iou()
        report |= {"miou": cm.miou(), "pixel_accuracy": cm.pixel_accuracy(),
                   "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(info.classes, iou)}}
    if want_det:
        report["detection"] = coco_map(gts, preds, info.det_classes)
    return report


def format_report(r: dict) -> str:
    def pct(v):
        return "   n/a" if v is None else f"{100 * v:6.2f}"

    lines = [f"{r['model']} on {r['split']} ({r['images']} images, input {r['input_size'][0]}x{r['input_size'][1]}, {r['backend']})"]
    if r.get("split_note"):
        lines.append(f"  split: {r['split_note']}")
    if r.get("warning"):
        lines.append(f"  warning: {r['warning']}")
    if "miou" in r:
        lines += [f"  {name:<12} IoU    {pct(v)}" for name, v in r["per_class_iou"].items()]
        lines += [f"  {'mIoU':<12}        {pct(r['miou'])}", f"  {'pixel acc':<12}        {pct(r['pixel_accuracy'])}"]
    if "detection" in r:
        d = r["detection"]
        lines += [f"  {name:<12} AP@0.5 {pct(v)}" for name, v in d["per_class_ap50"].items()]
        lines += [f"  {'mAP@0.5':<12}        {pct(d['map50'])}", f"  {'mAP@.5:.95':<12}        {pct(d['map'])}",
                  f"  ({d['gt_boxes']} ground-truth boxes derived from the labels, {d['detections']} detections)"]
    return "\n".join(lines)
