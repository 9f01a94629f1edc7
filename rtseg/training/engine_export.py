"""`rtseg export --format engine`: a TensorRT engine for a shipped ONNX model, built once and cached.

Precision comes from the ONNX file TensorRT parses (strongly typed networks; TensorRT 11 has no precision
flags and no calibrator): FP32 from the model itself, FP16 from an FP16 conversion of it, INT8 from the
model's INT8 sibling, an explicitly quantized (Q/DQ) ONNX file, which has to follow TensorRT's rules for
explicit quantization (`backends/qdq.py`). The INT8 engine is then gated: its val mIoU is measured
against the FP16 engine's, and when it loses more than `max_drop` points it is discarded and FP16 is used,
with both numbers printed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo
from .quantize import gate

log = logging.getLogger(__name__)


def int8_decision(fp16_miou: float, int8_miou: float, max_drop: float, force: bool = False) -> tuple[str, str]:
    """("int8" | "fp16", the gate's numbers) from the two measured val mIoUs."""
    ok, message = gate(fp16_miou, int8_miou, max_drop, reference="FP16")
    if ok:
        return "int8", message
    return ("int8", f"{message}; kept anyway (--force)") if force else ("fp16", f"{message}; INT8 refused, use FP16")


# -- the command -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineRequest:
    """`rtseg export --format engine`: which model, at what precision and shapes, and how INT8 is gated."""

    model: str  # a shipped FP32 model's name or an .onnx path
    precision: str = "fp16"  # fp32 | fp16 | int8
    # (height, width) each; none given: the profile `rtseg run` builds (every size the selector may run the
    # model at, tuned for its own), so the engine exported is the one runs find in the cache
    min_shape: tuple[int, int] | None = None
    opt_shape: tuple[int, int] | None = None
    max_shape: tuple[int, int] | None = None
    cache_dir: str | None = None  # default: the engine cache under rtseg's cache folder
    calib_data: str | None = None  # int8: default gate data (the Q/DQ model was calibrated when exported)
    calib_images: int = 200  # unused since TensorRT stopped calibrating; kept for the CLI
    gate_data: str | None = None  # int8: whose val split the gate measures (default: calib_data)
    max_drop: float = 1.0  # int8: largest val mIoU loss accepted, in points
    force: bool = False  # int8: keep it even if the gate fails


def export_engine(request: EngineRequest) -> dict:
    """Build (or find in the cache) the engine the request describes; for INT8 with gate data, measure it
    against FP16 and fall back to FP16 when it loses too much. Returns what was kept and where."""
    from ..backends.engine_cache import ShapeProfile
    from ..backends.tensorrt import TensorRTBackend
    from ..core.modelinfo import resolve_model

    info = resolve_model(request.model)
    if info.entry.get("precision", "fp32") != "fp32":
        raise RtsegError(
            f"{info.name} is already quantized; build engines from the FP32 model "
            f"({info.entry.get('base_model', 'its base model')}) with --precision int8"
        )
    shapes = (request.min_shape, request.opt_shape, request.max_shape)
    # none given: the backend picks the profile `rtseg run` does (`default_profile`, or the one size a
    # model with a fixed input shape takes), so the engine exported is the one runs find in the cache
    profile = ShapeProfile.parse(*shapes, default=info.input_size) if any(shapes) else None

    def load(precision: str) -> TensorRTBackend:
        return TensorRTBackend(info.path, precision=precision, profile=profile, cache_dir=request.cache_dir, info=info)

    backend = load(request.precision)
    backend.close()  # the engine is in the cache now; the gate below loads what it measures
    result = {
        "model": info.name,
        "precision": backend.precision,
        "profile": backend.profile.label(),
        "engine": str(backend.engine_path),
        "megabytes": round(backend.engine_bytes / 1e6, 2),
    }
    gate_data = request.gate_data or request.calib_data
    if backend.precision != "int8" or not gate_data:
        return result
    miou = {p: _val_miou(info, load(p), gate_data) for p in ("int8", "fp16")}
    chosen, message = int8_decision(miou["fp16"], miou["int8"], request.max_drop, request.force)
    log.info(f"accuracy gate: {message}")
    if chosen == "fp16":
        backend.discard_engine()
        fp16 = load("fp16")
        fp16.close()
        result.update(precision="fp16", engine=str(fp16.engine_path), megabytes=round(fp16.engine_bytes / 1e6, 2))
    result["gate"] = message
    return result


def _val_miou(info: ModelInfo, backend, data: str) -> float:
    """Val mIoU of a loaded backend on `data`, run as the pipeline runs it; the backend is closed after."""
    from ..evaluation.evaluate import evaluate
    from ..runtime.slot import ModelSlot

    slot = ModelSlot.for_backend(info, backend, backend.profile.opt)
    try:
        return evaluate(slot, data, "val", progress=False)["miou"]
    finally:
        slot.close()
