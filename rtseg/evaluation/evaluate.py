"""`rtseg eval`: per-class IoU, mIoU and pixel accuracy of a model on a CamVid-layout split.

The model runs exactly as in `rtseg run` (same preprocessing, same backend); predictions are compared at
the label's resolution (nearest resize), in one confusion matrix over the split, void ignored.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable, cast

import cv2
import numpy as np
from tqdm import tqdm

from ..core.errors import RtsegError
from ..core.machine import machine_description
from ..core.tasks import has_det, has_seg, normalize_task
from ..data.boxes import boxes_from_label
from ..data.camvid import CLASSES as CAMVID_CLASSES
from ..data.camvid import eval_pairs, read_label, split_description
from ..data.classmap import ClassMap, class_map_lut
from ..data.photometric import STRESSES, stressed_copies
from ..runtime.slot import ModelSlot
from .detmetrics import coco_map, require_pycocotools
from .metrics import ConfusionMatrix


def evaluate(
    slot: ModelSlot,
    data: str,
    split: str = "val",
    task: str | None = None,
    progress: bool = True,
    max_images: int | None = None,
    stress: bool = False,
    class_map: ClassMap | None = None,
) -> dict:
    """Metrics of a loaded model on a CamVid-layout split (`eval_pairs` names them), as a report that says
    what was measured: model, split, images, input size, backend, machine and date.

    `stress`: measure on the split's photometrically stressed copies instead (every frame brighter, darker,
    at gamma 0.5 and 2.0 and with blown highlights; `data/photometric.py`), one confusion matrix over all.

    `class_map`: the model's classes merged onto CamVid's before scoring (`data/classmap.py`); a mapping that
    does not fit the model and CamVid is refused before any frame runs."""
    try:
        pairs = eval_pairs(data, split)[:max_images]
    except FileNotFoundError as e:
        raise RtsegError(str(e)) from e

    def samples():
        for img_path, lab_path in pairs:
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if img is None:
                raise RtsegError(f"cannot read image {img_path}")
            try:
                label = read_label(lab_path)
            except ValueError as e:  # a colour PNG where class ids belong, say
                raise RtsegError(f"{e}: labels must be one class id per pixel (CamVid's *annot/ layout)") from e
            yield img, label

    frames = samples()
    kinds: tuple[str, ...] = ()
    if stress:
        kinds = tuple(STRESSES)
        frames = stressed_copies(frames, kinds)
    bar = tqdm(
        frames, total=len(pairs) * max(1, len(kinds)), desc=f"eval {slot.name} on {split}", unit="img", disable=not progress, leave=False
    )
    note = split_description(split) + (f"; each frame under {len(kinds)} photometric stresses ({', '.join(kinds)})" if kinds else "")
    report = {
        "model": slot.info.name,
        "split": split,
        "split_note": note,
        "images": len(pairs) * max(1, len(kinds)),
        "input_size": list(slot.input_size),
        "backend": slot.backend.name,
        "machine": machine_description(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if kinds:
        report["stress"] = list(kinds)
    if class_map is not None:
        report["class_map"] = class_map.source
    return report | measure(slot, bar, task, class_map)


def measure(
    slot: ModelSlot, samples: Iterable[tuple[np.ndarray, np.ndarray]], task: str | None = None, class_map: ClassMap | None = None
) -> dict:
    """Segmentation metrics (one confusion matrix, void ignored) and/or box AP (boxes derived from labels)
    of (BGR frame, label map) pairs, each run through `slot.process` exactly as `rtseg run` runs it.

    One forward pass per image serves both, so a multi-task model is measured exactly as it runs. With a
    `class_map`, each predicted class id becomes its CamVid class first, and the metrics are CamVid's.
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
    lut = None if class_map is None else class_map_lut(class_map, info.classes, CAMVID_CLASSES)
    classes = info.classes if lut is None else CAMVID_CLASSES
    cm = ConfusionMatrix(len(classes))
    gts, preds = [], []
    for img, label in samples:
        p = slot.process(img)
        if want_seg:
            mask = cast(np.ndarray, p.mask)  # None only from a box-only model, refused above
            pred = mask if lut is None else lut[mask]
            if pred.shape != label.shape:
                pred = cv2.resize(pred, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_NEAREST)
            cm.update(label, pred)
        if want_det:
            # every box the model gives, unthresholded: AP sweeps the score threshold itself
            gts.append(boxes_from_label(label))
            scale = np.array([label.shape[1] / w, label.shape[0] / h] * 2, np.float32)
            preds.append((p.outputs["boxes"][0] * scale, p.outputs["scores"][0], p.outputs["labels"][0]))
    report: dict = {}
    if want_seg and not cm.mat.sum():
        raise RtsegError(
            f"no labelled pixel holds a class id from 0 to {len(classes) - 1} ({', '.join(classes[:3])}, "
            "...): are these labels of this model's classes?"
        )
    if want_seg:
        iou = cm.iou()
        report |= {
            "miou": cm.miou(),
            "pixel_accuracy": cm.pixel_accuracy(),
            "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(classes, iou)},
        }
    if want_det:
        report["detection"] = coco_map(gts, preds, info.det_classes)
    return report


def format_report(r: dict) -> str:
    def pct(v):
        return "   n/a" if v is None else f"{100 * v:6.2f}"

    lines = [f"{r['model']} on {r['split']} ({r['images']} images, input {r['input_size'][0]}x{r['input_size'][1]}, {r['backend']})"]
    if r.get("split_note"):
        lines.append(f"  split: {r['split_note']}")
    if r.get("class_map"):
        lines.append(f"  classes: the model's merged onto the data's by --class-map {r['class_map']}")
    if r.get("warning"):
        lines.append(f"  warning: {r['warning']}")
    if "miou" in r:
        lines += [f"  {name:<12} IoU    {pct(v)}" for name, v in r["per_class_iou"].items()]
        lines += [f"  {'mIoU':<12}        {pct(r['miou'])}", f"  {'pixel acc':<12}        {pct(r['pixel_accuracy'])}"]
    if "detection" in r:
        d = r["detection"]
        lines += [f"  {name:<12} AP@0.5 {pct(v)}" for name, v in d["per_class_ap50"].items()]
        lines += [
            f"  {'mAP@0.5':<12}        {pct(d['map50'])}",
            f"  {'mAP@.5:.95':<12}        {pct(d['map'])}",
            f"  ({d['gt_boxes']} ground-truth boxes derived from the labels, {d['detections']} detections)",
        ]
    return "\n".join(lines)
