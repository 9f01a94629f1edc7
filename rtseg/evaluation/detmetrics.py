"""Box detection metrics: COCO-style AP through pycocotools (the reference implementation)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from ..core.errors import RtsegError


def require_pycocotools() -> None:
    """Box AP needs pycocotools: say so before any image is processed, not after."""
    try:
        import pycocotools.cocoeval  # noqa: F401
    except ImportError as e:
        raise RtsegError("box metrics need pycocotools: pip install 'rtseg[eval]'") from e


def coco_map(
    ground_truth: list[tuple[np.ndarray, np.ndarray]],
    predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
) -> dict:
    """mAP@0.5, mAP@[.5:.95] and per-class AP@0.5.

    ground_truth[i] = (boxes (N, 4) x1 y1 x2 y2, classes (N,)); predictions[i] = (boxes, scores, classes).
    """
    require_pycocotools()
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images: list[dict[str, int]] = []
    annotations: list[dict[str, Any]] = []  # COCO's records of the ground truth and of the predictions
    detections: list[dict[str, Any]] = []
    for i, (boxes, classes) in enumerate(ground_truth):
        images.append({"id": i})
        for b, c in zip(boxes, classes):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "bbox": xywh(b),
                    "area": float((b[2] - b[0]) * (b[3] - b[1])),
                    "iscrowd": 0,
                }
            )
    for i, (boxes, scores, classes) in enumerate(predictions):
        for b, s, c in zip(boxes, scores, classes):
            detections.append({"image_id": i, "category_id": int(c), "bbox": xywh(b), "score": float(s)})
    categories = [{"id": k, "name": n} for k, n in enumerate(class_names)]
    result: dict[str, Any] = {
        "map50": 0.0,
        "map": 0.0,
        "per_class_ap50": {n: None for n in class_names},
        "gt_boxes": len(annotations),
        "detections": len(detections),
    }
    if not annotations:
        raise RtsegError("no ground-truth boxes in this split: nothing to measure")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        present = {a["category_id"] for a in annotations}
        if not detections:
            result["per_class_ap50"] = {n: (0.0 if k in present else None) for k, n in enumerate(class_names)}
            return result
        ev = COCOeval(gt, gt.loadRes(detections), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    result["map"], result["map50"] = float(ev.stats[0]), float(ev.stats[1])
    # precision[T, R, K, A, M]: IoU 0.5 is T=0, all areas A=0, 100 detections M=2; -1 marks "no ground truth"
    prec = ev.eval["precision"][0, :, :, 0, 2]
    for k, n in enumerate(class_names):
        p = prec[:, k]
        result["per_class_ap50"][n] = float(p[p > -1].mean()) if (p > -1).any() else None
    return result
