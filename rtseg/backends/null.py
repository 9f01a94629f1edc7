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

    def __init__(self, model_path=None, **_):
        self._masks: dict[tuple[int, int], np.ndarray] = {}  # one answer per input size, made once

    def static_size(self) -> tuple[int, int] | None:
        return None

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        hw = x.shape[2:]
        mask = self._masks.get(hw)
        if mask is None:
            # a fixed, varied map (stripes of every class): the overlay and the class shares do real work
            mask = (np.arange(hw[1], dtype=np.int32)[None, None, :] * 11 // max(hw[1], 1)).astype(np.uint8)
            mask = self._masks[hw] = np.ascontiguousarray(np.broadcast_to(mask, (1, *hw)))
        return {"mask": mask}

    def close(self) -> None:
        self._masks.clear()
