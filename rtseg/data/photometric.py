"""Photometric stress: the same frames brighter, darker, re-gamma'd and with blown highlights.

Dashcams meet light their training frames never showed: a saturated sky, a dusk drive, an auto-exposure
that overshoots. A model (and above all an INT8 file whose activation ranges were fixed on calibration
frames) can hold on the held-out drive and still collapse there. The INT8 accuracy gate measures on these
copies as well as on the plain frames, and calibration sees them too (`training/quantize.py`).

Each stress is a 256-entry lookup table (`cv2.LUT`), so it is exact, cheap and the same everywhere.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import cv2
import numpy as np


def _table(fn) -> np.ndarray:
    x = np.arange(256, dtype=np.float64) / 255.0
    return np.clip(np.rint(fn(x) * 255.0), 0, 255).astype(np.uint8)


# name -> lookup table on 0..255; one row per kind of light the issue names
STRESSES: dict[str, np.ndarray] = {
    "bright": _table(lambda x: x * 1.6),  # overexposed: everything above 160 clips to white
    "dark": _table(lambda x: x * 0.45),  # underexposed: dusk, a tunnel's mouth
    "gamma-0.5": _table(lambda x: x**0.5),  # lifted shadows, washed-out midtones
    "gamma-2.0": _table(lambda x: x**2.0),  # crushed shadows, deep contrast
    "highlights": _table(lambda x: np.where(x > 0.55, 1.0, x)),  # blown highlights: sky and glare saturate
}


def stress(image: np.ndarray, kind: str) -> np.ndarray:
    """`image` (uint8, any channel count) under one photometric stress.

    Example:
        >>> import numpy as np
        >>> stress(np.full((2, 2, 3), 200, np.uint8), "bright")[0, 0].tolist()
        [255, 255, 255]
    """
    return cv2.LUT(image, STRESSES[kind])


def stressed_copies(
    samples: Iterable[tuple[np.ndarray, np.ndarray]], kinds: Iterable[str] = tuple(STRESSES)
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every (image, label) pair once under each stress in `kinds`: labels are unchanged (light does not
    move a class boundary)."""
    kinds = tuple(kinds)
    for image, label in samples:
        for kind in kinds:
            yield stress(image, kind), label
