"""Anchor-free box detection ("Objects as Points", CenterNet) on the shared MobileNetV2 encoder.

The head predicts, at stride 4, a heatmap of object centres per class, the box size (log, in
stride-4 cells) and the sub-cell centre offset. Decoding is part of the exported graph: a 3x3 max-pool
keeps local peaks (this is the NMS), top-k picks the best K, and boxes come out in input pixels, so
the pipeline only thresholds scores and rescales: no Python NMS per frame.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import cbr, separable
from .encoder import MobileNetV2Encoder

STRIDE = 4
MAX_OBJECTS = 64


class CenterNetHead(nn.Module):
    """A light top-down path (strides 32/16 -> 8 -> 4, FPN-style sums) and three small heads."""

    def __init__(self, channels: dict[int, int], num_classes: int = 3, inter: int = 64):
        super().__init__()
        self.lateral = nn.ModuleDict({str(s): cbr(channels[s], inter) for s in (32, 16, 8, 4)})
        self.smooth = separable(inter, inter)
        self.heatmap = nn.Sequential(separable(inter, inter), nn.Conv2d(inter, num_classes, 1))
        self.size = nn.Sequential(separable(inter, inter), nn.Conv2d(inter, 2, 1))
        self.offset = nn.Sequential(separable(inter, inter), nn.Conv2d(inter, 2, 1))
        # start with a background prior of ~0.1 so the focal loss is not swamped at the first steps
        nn.init.constant_(cast(torch.Tensor, self.heatmap[-1].bias), -math.log((1 - 0.1) / 0.1))

    def forward(self, feats: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.lateral["32"](feats[32])
        for s in ("16", "8", "4"):
            lat = self.lateral[s](feats[int(s)])
            x = F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False) + lat
        x = self.smooth(x)
        return {"heatmap": self.heatmap(x), "size": self.size(x), "offset": self.offset(x)}


class DetectionNet(nn.Module):
    """Encoder + CenterNet box head; returns the raw head outputs (see detection.decode)."""

    def __init__(
        self, num_det_classes: int = 3, width: float = 1.0, output_stride: int = 16, pretrained: str | None = None, layout: str = "tv"
    ):
        super().__init__()
        self.encoder = MobileNetV2Encoder(width, output_stride, pretrained, layout)
        self.det_head = CenterNetHead(self.encoder.channels, num_det_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.det_head(self.encoder(x))


def decode(out: dict[str, torch.Tensor], k: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw head outputs -> boxes (N, K, 4) x1 y1 x2 y2 in input pixels, scores (N, K), labels (N, K).

    Boxes are not clipped to the image here (the graph stays free of shape arithmetic); the
    post-processing clips the K boxes it keeps.
    """
    hm = torch.sigmoid(out["heatmap"])
    hm = hm * (F.max_pool2d(hm, 3, stride=1, padding=1) == hm).to(hm.dtype)  # keep local peaks only
    n, _, h, w = hm.shape
    scores, idx = hm.reshape(n, -1).topk(k, dim=1)
    labels = torch.div(idx, h * w, rounding_mode="floor")
    pos = idx - labels * (h * w)
    ys = torch.div(pos, w, rounding_mode="floor")
    xs = pos - ys * w
    size = out["size"].reshape(n, 2, -1)
    offset = out["offset"].reshape(n, 2, -1)
    bw = torch.gather(size[:, 0], 1, pos).exp() * STRIDE
    bh = torch.gather(size[:, 1], 1, pos).exp() * STRIDE
    cx = (xs.to(hm.dtype) + torch.gather(offset[:, 0], 1, pos)) * STRIDE
    cy = (ys.to(hm.dtype) + torch.gather(offset[:, 1], 1, pos)) * STRIDE
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
    return boxes, scores, labels


# -- training targets and loss ---------------------------------------------------------------------
def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift that keeps IoU >= min_overlap with the true box."""
    a1, b1, c1 = 1, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def encode_targets(boxes: np.ndarray, classes: np.ndarray, image_hw: tuple[int, int], num_classes: int = 3) -> dict[str, np.ndarray]:
    """Boxes in input pixels -> heatmap (C, H/4, W/4) with Gaussian peaks, and per-object size/offset/index."""
    h, w = (image_hw[0] + STRIDE - 1) // STRIDE, (image_hw[1] + STRIDE - 1) // STRIDE
    heatmap = np.zeros((num_classes, h, w), np.float32)
    size = np.zeros((MAX_OBJECTS, 2), np.float32)
    offset = np.zeros((MAX_OBJECTS, 2), np.float32)
    index = np.zeros((MAX_OBJECTS,), np.int64)
    mask = np.zeros((MAX_OBJECTS,), np.float32)
    order: np.ndarray | list[int]  # the largest boxes first
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:MAX_OBJECTS] if len(boxes) else []
    for j, i in enumerate(order):
        x1, y1, x2, y2 = boxes[i] / STRIDE
        bw, bh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
        r = max(0, int(gaussian_radius(bh, bw)))
        _draw_gaussian(heatmap[classes[i]], ix, iy, r)
        size[j] = np.log(max(bw, 1e-2)), np.log(max(bh, 1e-2))
        offset[j] = cx - ix, cy - iy
        index[j] = iy * w + ix
        mask[j] = 1
    return {"heatmap": heatmap, "size": size, "offset": offset, "index": index, "mask": mask}


def _draw_gaussian(hm: np.ndarray, x: int, y: int, r: int) -> None:
    d = 2 * r + 1
    sigma = d / 6
    g = np.exp(-(np.arange(-r, r + 1)[:, None] ** 2 + np.arange(-r, r + 1)[None] ** 2) / (2 * sigma * sigma))
    h, w = hm.shape
    left, right, top, bottom = min(x, r), min(w - x, r + 1), min(y, r), min(h - y, r + 1)
    window = hm[y - top : y + bottom, x - left : x + right]
    np.maximum(window, g[r - top : r + bottom, r - left : r + right], out=window)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on the centre heatmap."""
    pred = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg_weight = (1 - target) ** 4
    pos_loss = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred**2 * neg_weight * (1 - pos)).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1)


def detection_loss(out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    hm_loss = focal_loss(out["heatmap"], targets["heatmap"])
    n = out["size"].shape[0]
    idx = targets["index"].unsqueeze(1).expand(-1, 2, -1)  # (N, 2, MAX_OBJECTS)
    size = torch.gather(out["size"].float().reshape(n, 2, -1), 2, idx).transpose(1, 2)
    offset = torch.gather(out["offset"].float().reshape(n, 2, -1), 2, idx).transpose(1, 2)
    mask = targets["mask"].unsqueeze(-1)
    denom = mask.sum().clamp(min=1) * 2
    size_loss = (F.l1_loss(size, targets["size"], reduction="none") * mask).sum() / denom
    off_loss = (F.l1_loss(offset, targets["offset"], reduction="none") * mask).sum() / denom
    return hm_loss + size_loss + off_loss
