"""`rtseg export --format engine`: a TensorRT engine for a shipped ONNX model, built once and cached.

INT8 is calibrated with TensorRT's entropy calibrator on training frames, then gated: its val mIoU is
measured against the FP16 engine's, and when it loses more than `max_drop` points the INT8 engine and
its calibration table are discarded and FP16 is used, with both numbers printed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..backends.engine_cache import EngineCache, ShapeProfile
from ..core.errors import RtsegError
from .quantize import gate


def int8_decision(fp16_miou: float, int8_miou: float, max_drop: float, force: bool = False) -> tuple[str, str]:
    """("int8" | "fp16", the gate's numbers) from the two measured val mIoUs."""
    ok, message = gate(fp16_miou, int8_miou, max_drop, reference="FP16")
    if ok:
        return "int8", message
    return ("int8", f"{message}; kept anyway (--force)") if force else ("fp16", f"{message}; INT8 refused, use FP16")


def calibration_cache_path(cache: EngineCache, model_name: str, profile: ShapeProfile) -> Path:
    return cache.folder / f"{model_name}-{profile.label()}.calib"


def export_engine(model: str, precision: str, profile_shapes: tuple, cache_dir: str | None = None,
                  calib_data: str | None = None, calib_images: int = 200, gate_data: str | None = None,
                  max_drop: float = 1.0, force: bool = False, say: Callable[[str], None] = print) -> dict:
    from ..backends.tensorrt import TensorRTBackend, build_engine, engine_key
    from ..evaluation.evaluate import evaluate
    from ..core.modelinfo import resolve_model
    from ..runtime.slot import ModelSlot
    from .quantize import calibration_images, preprocessed

    info = resolve_model(model)
    if info.entry.get("precision", "fp32") != "fp32":
        raise RtsegError(f"{info.name} is already quantized; build engines from the FP32 model "
                         f"({info.entry.get('base_model', 'its base model')})")
    profile = ShapeProfile.parse(*profile_shapes, default=info.input_size)
    cache = EngineCache(cache_dir)
    key = engine_key(info.path, precision, profile)
    data, _ = cache.load(key, info.name)
    if data is None:
        calib, calib_cache = None, None
        if precision == "int8":
            calib_cache = calibration_cache_path(cache, info.name, profile)
            if calib_data:
                calib = preprocessed(info, calibration_images(calib_data, calib_images), profile.opt)
                calib_cache.unlink(missing_ok=True)  # new frames: calibrate afresh
            elif not calib_cache.exists():
                raise RtsegError("--precision int8 needs --calib-data DIR (CamVid-layout root or a folder of frames)")
        say(f"building a TensorRT {precision} engine for {info.name} ({profile.label()})"
            + (f", calibrating on {len(calib)} frames" if calib else ""))
        data = build_engine(info.path, precision, profile, cache, calib, calib_cache)
        cache.store(key, info.name, data, {"model": info.name})
    result = {"model": info.name, "precision": precision, "profile": profile.label(),
              "engine": str(cache.path(key, info.name)), "megabytes": round(len(data) / 1e6, 2)}
    gate_data = gate_data or calib_data
    if precision == "int8" and gate_data:
        miou = {}
        for p in ("fp16", "int8"):
            slot = ModelSlot.around(info, TensorRTBackend(info.path, precision=p, profile=profile, cache_dir=cache.folder,
                                                          say=say), profile.opt)
            miou[p] = evaluate(slot, gate_data, "val", progress=False)["miou"]
            slot.close()
        chosen, message = int8_decision(miou["fp16"], miou["int8"], max_drop, force)
        say(f"accuracy gate: {message}")
        if chosen == "fp16":
            cache.discard(key, info.name)
            calibration_cache_path(cache, info.name, profile).unlink(missing_ok=True)
            result.update(precision="fp16", engine=str(cache.path(engine_key(info.path, "fp16", profile), info.name)))
        result["gate"] = message
    return result
