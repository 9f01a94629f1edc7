"""Ground-truth boxes for CamVid, derived from its label maps (CamVid has no box annotations).

One box per connected component (8-connectivity) of each countable class, components smaller than
`min_area` pixels dropped. Limits, by construction:
- touching instances of one class merge into one box (a queue of parked cars, a group of pedestrians),
  unless void pixels separate them (CamVid's annotators often left a void outline between objects);
- an object cut by an occluder (a pole in front of a car) becomes two boxes;
- a rider and a bicycle are one Bicyclist component, as CamVid labels them together;
- boxes are at label resolution (360x480 here), so objects under ~7x7 pixels are not counted.
These boxes measure localization consistently across our models; they are not COCO-style instances.
"""

from __future__ import annotations

import cv2
import numpy as np

# CamVid label id -> detection class index (0..2), for the classes one counts
COUNTABLE = {8: "Car", 9: "Pedestrian", 10: "Bicyclist"}
DET_CLASSES = tuple(COUNTABLE.values())
MIN_AREA = 50


def boxes_from_label(label: np.ndarray, min_area: int = MIN_AREA) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) float32 x1, y1, x2, y2 in pixels, exclusive right/bottom; classes (N,) int64 in 0..2)."""
    boxes, classes = [], []
    for det_id, label_id in enumerate(COUNTABLE):
        binary = (label == label_id).view(np.uint8)
        if not binary.any():
            continue
        n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for x, y, w, h, area in stats[1:]:
            if area >= min_area:
                boxes.append((x, y, x + w, y + h))
                classes.append(det_id)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
    return np.asarray(boxes, np.float32), np.asarray(classes, np.int64)
