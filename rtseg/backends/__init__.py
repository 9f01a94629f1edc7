"""Inference backends behind one small protocol; a new backend is one module plus a registry line."""

from __future__ import annotations

import logging
import sys
from importlib import import_module
from typing import Callable, Protocol

import numpy as np

from ..core.errors import RtsegError

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str  # e.g. "onnxruntime-cpu"
    input_name: str

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Run one NCHW float32 batch; returns the model's outputs by name (e.g. 'mask')."""
        ...

    def static_size(self) -> tuple[int, int] | None:
        """(height, width) when the model accepts only that input size, None when any size goes."""
        ...

    def close(self) -> None: ...


# name -> "module:factory"; factories take (model_path, **options) and return a Backend. A factory's module is
# imported only when its backend is chosen, so one may live above this floor: PyTorch's rebuilds rtseg's
# networks and lives with them (models/torch_backend.py)
_REGISTRY = {
    "onnxruntime": "rtseg.backends.onnxruntime:OnnxRuntimeBackend",
    "onnxruntime-cuda": "rtseg.backends.onnxruntime:OnnxRuntimeCudaBackend",
    "tensorrt": "rtseg.backends.tensorrt:TensorRTBackend",
    "torch": "rtseg.models.torch_backend:TorchBackend",
    "null": "rtseg.backends.null:NullBackend",  # no inference: the pipeline's own ceiling
}
# what a factory's module needs beyond the runtime install, and the extra that brings it
_NEEDS = {"torch": ("PyTorch", "train")}
GPU_BACKENDS = ("tensorrt", "onnxruntime-cuda")
RUNS_CPU_INT8 = ("onnxruntime", "null")  # the backends that run an INT8 file laid out for ORT's CPU kernels as it is


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0][:200]}" if text else e.__class__.__name__


def available_backends() -> list[str]:
    return ["auto", *_REGISTRY]


def model_for(kind: str, info, precision: str | None = None):
    """The model backend `kind` runs for `info`: itself, except an INT8 file laid out for ONNX Runtime's CPU
    kernels (every shipped `-int8`, the default among them) on any other backend, which gains nothing from
    it (TensorRT refuses its layout, PyTorch has no weights for it): the FP32 model it was quantized from."""
    from ..core.modelinfo import cpu_int8_base

    if kind in RUNS_CPU_INT8 or precision == "int8":
        return info
    base = cpu_int8_base(info)
    if base is None:
        return info
    log.info(f"rtseg: {info.name} is INT8 for the CPU; {kind} runs {base.name}, the model it came from")
    return base


def _factory(kind: str) -> Callable[..., Backend]:
    """The registry's factory for `kind`, its module imported now; a missing extra is said in one line."""
    module, name = _REGISTRY[kind].split(":")
    try:
        return getattr(import_module(module), name)
    except ImportError as e:
        if kind not in _NEEDS:
            raise
        what, extra = _NEEDS[kind]
        raise RtsegError(f"the {kind} backend needs {what}: pip install 'rtseg[{extra}]'") from e


def load_backend(kind: str, model, fallback: bool = True, warn: Callable[[str], None] | None = None, **options) -> Backend:
    """Load `kind` ("auto" decides here) for `model`, a resolved ModelInfo or a path to an .onnx file; a GPU
    backend that cannot load falls back to the CPU, with a warning. Backends that need the model's metadata
    (TensorRT: input size, name) get the ModelInfo as `info` instead of resolving the file again."""
    from .choice import resolve_backend

    info = model if hasattr(model, "input_size") and hasattr(model, "path") else None
    model_path = str(info.path) if info is not None else str(model)
    if info is not None:
        options = {**options, "info": info}
    kind, _ = resolve_backend(kind)
    if kind not in _REGISTRY:
        raise RtsegError(f"unknown backend '{kind}' (available: {', '.join(available_backends())})")
    if info is not None:
        runs = model_for(kind, info, options.get("precision"))
        if runs is not info:
            info, model_path, options = runs, str(runs.path), {**options, "info": runs}
    try:
        return _factory(kind)(model_path, **options)
    except Exception as e:
        if kind not in GPU_BACKENDS:
            raise
        # a GPU stack fails in many ways (an import, a driver, an API its version lacks): one line for each
        error = e if isinstance(e, RtsegError) else RtsegError(f"{kind} failed: {_first_line(e)}")
        if not fallback:
            raise error from e
        (warn or (lambda m: print(m, file=sys.stderr)))(
            f"rtseg: warning: {kind} could not load the model ({error}); falling back to ONNX Runtime on the CPU"
        )
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, threads=options.get("threads"), fixed_size=options.get("fixed_size"))
