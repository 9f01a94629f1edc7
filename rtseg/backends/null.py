"""`--backend null`: a stand-in that answers at once with a fixed class map, for measuring the pipeline alone.

With it, `rtseg run` and the benchmarks time decoding, preprocessing, postprocessing, the overlay and the
outputs with no inference at all: the ceiling the pipeline puts on any model (issue 14). It never runs a
model file, but takes the model's metadata (input size, classes), so every other stage works as usual.
"""

from __future__ import annotations

import numpy as np


class NullBackend:
    name = "null"
    input_name = "image"

    def __init__(self, model_path=None, info=None, **_):
        # the model's own outputs, empty: its classes for the map, no boxes (a box model gets no map at all)
        self.classes = len(info.classes) if info is not None else 11
        task = info.task if info is not None else "seg"
        self.seg, self.det = task in ("seg", "segdet"), task in ("det", "segdet")
        self._masks: dict[tuple[int, int], np.ndarray] = {}  # one answer per input size, made once
        self._no_boxes = {
            "boxes": np.zeros((1, 0, 4), np.float32),
            "scores": np.zeros((1, 0), np.float32),
            "labels": np.zeros((1, 0), np.int64),
        }

    def static_size(self) -> tuple[int, int] | None:
        return None

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(self._no_boxes) if self.det else {}
        if self.seg:
            hw = x.shape[2:]
            mask = self._masks.get(hw)
            if mask is None:
                # a fixed, varied map (stripes of every class): the overlay and the class shares do real work
                row = (np.arange(hw[1], dtype=np.int64) * self.classes // max(hw[1], 1)).astype(np.uint8)
                mask = self._masks[hw] = np.ascontiguousarray(np.broadcast_to(row, (1, *hw)))
            out["mask"] = mask
        return out

    def close(self) -> None:
        self._masks.clear()
