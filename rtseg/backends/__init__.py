"""Inference backends behind one small protocol; a new backend is one module plus a registry line."""
from __future__ import annotations

from importlib import import_module
from typing import Protocol

import numpy as np

from ..errors import RtsegError


class Backend(Protocol):
    name: str            # e.g. "onnxruntime-cpu"
    input_name: str

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Run one NCHW float32 batch; returns the model's outputs by name (e.g. 'mask')."""
        ...

    def close(self) -> None: ...


# name -> "module:factory"; factories take (model_path, **options) and return a Backend
_REGISTRY = {
    "onnxruntime": "rtseg.backends.onnxruntime:OnnxRuntimeBackend",
    "torch": "rtseg.backends.torch:TorchBackend",
}


def available_backends() -> list[str]:
    return list(_REGISTRY)


def load_backend(kind: str, model_path: str, **options) -> Backend:
    if kind not in _REGISTRY:
        raise RtsegError(f"unknown backend '{kind}' (available: {', '.join(_REGISTRY)})")
    module, factory = _REGISTRY[kind].split(":")
    return getattr(import_module(module), factory)(model_path, **options)
