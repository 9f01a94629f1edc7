"""A model ready to run: its metadata, backend, preprocessor and postprocessor, loaded together.

The pipeline holds one current slot; every frame records the slot it was preprocessed with and finishes
with it. Switching models (the selector) is loading a new slot beside the running one, then making it
current: frames in flight are never fed to a model of another input size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import Backend, load_backend
from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo, variant_name
from .postprocess import Postprocessor
from .preprocess import Preprocessor


@dataclass
class ModelSlot:
    info: ModelInfo
    backend: Backend
    pre: Preprocessor
    post: Postprocessor

    @property
    def name(self) -> str:
        return variant_name(self.info, (self.pre.height, self.pre.width))

    def warm_up(self, runs: int = 2) -> None:
        """First inferences allocate and plan; do them before the slot meets real frames."""
        x = np.zeros((1, 3, self.pre.height, self.pre.width), np.float32)
        for _ in range(runs):
            self.backend.infer(x)


def load_slot(info: ModelInfo, backend: str = "onnxruntime", threads: int | None = None,
              input_size: tuple[int, int] | None = None, alpha: float = 0.5, score_threshold: float = 0.3,
              pool_size: int = 8, **backend_options) -> ModelSlot:
    size = input_size or info.input_size
    loaded = load_backend(backend, str(info.path), threads=threads, **backend_options)
    static = getattr(loaded, "static_size", lambda: None)()
    if static and tuple(static) != tuple(size):
        raise RtsegError(f"model {info.name} only accepts {static[0]}x{static[1]} inputs, not {size[0]}x{size[1]}"
                         + (" (--input-size)" if input_size else ""))
    return ModelSlot(
        info=info,
        backend=loaded,
        pre=Preprocessor(size, info.mean, info.std, pool_size=pool_size),
        post=Postprocessor(info.palette_rgb, info.classes, alpha, info.det_classes, score_threshold),
    )
