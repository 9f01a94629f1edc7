"""The class colour legend (`--legend`, `Result.overlay(legend=True)`): swatch and name per class.

Rendered once per model and pasted into each frame's top-right corner, so it costs a copy, not text drawing.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

FONT, SCALE, THICK, ROW = cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1, 16


@lru_cache(maxsize=16)
def legend_patch(classes: tuple[str, ...], palette_rgb: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """A BGR image: one row per class, its colour swatch then its name, on a dark background."""
    text_w = max(cv2.getTextSize(n, FONT, SCALE, THICK)[0][0] for n in classes)
    patch = np.full((ROW * len(classes) + 6, text_w + 30, 3), 24, np.uint8)
    for i, (name, rgb) in enumerate(zip(classes, palette_rgb)):
        y = 3 + i * ROW
        cv2.rectangle(patch, (4, y + 2), (18, y + ROW - 3), tuple(int(c) for c in rgb[::-1]), -1)
        cv2.putText(patch, name, (24, y + ROW - 4), FONT, SCALE, (255, 255, 255), THICK, cv2.LINE_AA)
    return patch


def draw_legend(img: np.ndarray, classes: tuple[str, ...], palette_rgb) -> None:
    """Paste the legend into the top-right corner of `img` (in place), cropped if the frame is smaller.

    It lists every class whatever the frame holds, so a colour can be read before its class appears."""
    patch = legend_patch(tuple(classes), tuple(tuple(int(c) for c in p) for p in palette_rgb[: len(classes)]))
    h, w = min(patch.shape[0], img.shape[0]), min(patch.shape[1], img.shape[1])
    img[:h, img.shape[1] - w :] = patch[:h, :w]
