"""`rtseg export --format engine`: a TensorRT engine for a shipped ONNX model, built once and cached.

INT8 is calibrated with TensorRT's entropy calibrator on training frames, then gated: its val mIoU is
measured against the FP16 engine's, and when it loses more than `max_drop` points the INT8 engine and
its calibration table are discarded and FP16 is used, with both numbers printed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..backends.engine_cache import EngineCache, ShapeProfile
from ..core.errors import RtsegError
from .quantize import gate

log = logging.getLogger(__name__)


def int8_decision(fp16_miou: float, int8_miou: float, max_drop: float, force: bool = False) -> tuple[str, str]:
    """("int8" | "fp16", the gate's numbers) from the two measured val mIoUs."""
    ok, message = gate(fp16_miou, int8_miou, max_drop, reference="FP16")
    if ok:
        return "int8", message
    return ("int8", f"{message}; kept anyway (--force)") if force else ("fp16", f"{message}; INT8 refused, use FP16")


def calibration_cache_path(cache: EngineCache, model_name: str, profile: ShapeProfile) -> Path:
    return cache.folder / f"{model_name}-{profile.label()}.calib"


@dataclass(frozen=True)
class EngineRequest:
    """`rtseg export --format engine`: which model, at what precision and shapes, and how INT8 is calibrated
    and gated."""

    model: str                                  # a shipped FP32 model's name or an .onnx path
    precision: str = "fp16"                     # fp32 | fp16 | int8
    min_shape: tuple[int, int] | None = None    # (height, width); None: the model's own size
    opt_shape: tuple[int, int] | None = None
    max_shape: tuple[int, int] | None = None
    cache_dir: str | None = None                # default: the engine cache under rtseg's cache folder
    calib_data: str | None = None               # int8: frames to calibrate on
    calib_images: int = 200
    gate_data: str | None = None                # int8: whose val split the gate measures (default: calib_data)
    max_drop: float = 1.0                       # int8: largest val mIoU loss accepted, in points
    force: bool = False                         # int8: keep it even if the gate fails


def export_engine(request: EngineRequest) -> dict:
    """Build (or find in the cache) the engine the request describes; for INT8 with gate data, measure it
    against FP16 and fall back to FP16 when it loses too much. Returns what was kept and where."""
    from ..backends.tensorrt import TensorRTBackend, build_engine, engine_key
    from ..evaluation.evaluate import evaluate
    from ..core.modelinfo import resolve_model
    from ..runtime.slot import ModelSlot
    from .quantize import calibration_images, preprocessed

    info = resolve_model(request.model)
    if info.entry.get("precision", "fp32") != "fp32":
        raise RtsegError(f"{info.name} is already quantized; build engines from the FP32 model "
                         f"({info.entry.get('base_model', 'its base model')})")
    profile = ShapeProfile.parse(request.min_shape, request.opt_shape, request.max_shape, default=info.input_size)
    cache = EngineCache(request.cache_dir)
    precision = request.precision
    key = engine_key(info.path, precision, profile)
    data, _ = cache.load(key, info.name)
    if data is None:
        calib, calib_cache = None, None
        if precision == "int8":
            calib_cache = calibration_cache_path(cache, info.name, profile)
            if request.calib_data:
                calib = preprocessed(info, calibration_images(request.calib_data, request.calib_images), profile.opt)
                calib_cache.unlink(missing_ok=True)  # new frames: calibrate afresh
            elif not calib_cache.exists():
                raise RtsegError("--precision int8 needs --calib-data DIR (CamVid-layout root or a folder of frames)")
        log.info(f"building a TensorRT {precision} engine for {info.name} ({profile.label()})"
                 + (f", calibrating on {len(calib)} frames" if calib else ""))
        data = build_engine(info.path, precision, profile, cache, calib, calib_cache)
        cache.store(key, info.name, data, {"model": info.name})
    result = {"model": info.name, "precision": precision, "profile": profile.label(),
              "engine": str(cache.path(key, info.name)), "megabytes": round(len(data) / 1e6, 2)}
    gate_data = request.gate_data or request.calib_data
    if precision == "int8" and gate_data:
        miou = {}
        for p in ("fp16", "int8"):
            backend = TensorRTBackend(info.path, precision=p, profile=profile, cache_dir=cache.folder)
            slot = ModelSlot.around(info, backend, profile.opt)
            miou[p] = evaluate(slot, gate_data, "val", progress=False)["miou"]
            slot.close()
        chosen, message = int8_decision(miou["fp16"], miou["int8"], request.max_drop, request.force)
        log.info(f"accuracy gate: {message}")
        if chosen == "fp16":
            cache.discard(key, info.name)
            calibration_cache_path(cache, info.name, profile).unlink(missing_ok=True)
            result.update(precision="fp16", engine=str(cache.path(engine_key(info.path, "fp16", profile), info.name)))
        result["gate"] = message
    return result
