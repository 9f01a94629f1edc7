"""`rtseg export --model NAME --precision int8`: an INT8 sibling of a shipped FP32 model, gated.

The sibling is calibrated on training frames (never the drive that selected the model), then measured
against its FP32 base on that split twice: as recorded, and under photometric stress (`data/photometric.py`),
because a file that holds on ordinary frames can still collapse in a bright sky. It ships only if it loses
at most `max_drop` points on both and, for the CPU layout, no weight can saturate a CPU without VNNI
(`quantize.saturation_risks`). The manifest entry keeps both figures and the command that made it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import RtsegError


WEIGHT_BITS_TEXT = {"7-gemm": "7-bit in matrix-product convolutions, 8-bit depthwise", "7": "7-bit", "8": "8-bit"}


@dataclass(frozen=True)
class Int8Request:
    """`rtseg export --model NAME --precision int8`: the FP32 model, calibration, the gate, where it goes."""

    model: str
    calib_data: str
    out_dir: Path
    manifest_path: Path | None = None
    name: str | None = None  # default: <model>-int8
    calib_images: int = 60
    calib_method: str = "minmax"
    gate_data: str | None = None  # default: calib_data
    max_drop: float = 1.0
    force: bool = False
    qdq: str = "cpu"  # cpu (ONNX Runtime's fastest) or tensorrt (symmetric, for engines)
    command: str | None = None  # the command line, recorded beside the numbers


@dataclass(frozen=True)
class GateVerdict:
    """What the INT8 gate measured and decided."""

    ok: bool
    message: str  # one line per check, '; '-joined
    reports: dict  # {"fp32"|"int8": {"plain"|"stressed": eval report}}


def gate_int8(fp32_slot, int8_slot, data: str, split: str, max_drop: float, risks: list[str]) -> GateVerdict:
    """Measure both slots on `split` of `data`, plain and photometrically stressed, and decide."""
    from ..evaluation.evaluate import evaluate
    from .quantize import gate

    reports = {
        p: {kind: evaluate(slot, data, split, progress=False, stress=(kind == "stressed")) for kind in ("plain", "stressed")}
        for p, slot in (("fp32", fp32_slot), ("int8", int8_slot))
    }
    checks = [
        gate(reports["fp32"][k]["miou"], reports["int8"][k]["miou"], max_drop, split=split + (" (stressed)" if k == "stressed" else ""))
        for k in ("plain", "stressed")
    ]
    ok = all(c[0] for c in checks) and not risks
    lines = [c[1] for c in checks]
    if risks:
        lines.append(
            f"{len(risks)} layers can saturate on CPUs without VNNI (int8 weights beyond +-64: "
            f"{', '.join(risks[:3])}{', ...' if len(risks) > 3 else ''})"
        )
    return GateVerdict(ok, "; ".join(lines), reports)


def export_int8(request: Int8Request) -> Path:
    """INT8 sibling of a shipped FP32 model, kept only if the gate passes (or `force`); returns its path."""
    import onnx

    from ..core.modelinfo import resolve_model, sha256
    from ..runtime.slot import load_slot
    from .quantize import CPU_WEIGHT_BITS, calibration_images, quantize_int8, saturation_risks

    info = resolve_model(request.model)
    name = request.name or f"{info.name}-int8" + ("-trt" if request.qdq == "tensorrt" else "")
    output = request.out_dir / f"{name}.onnx"
    # the split that selected the model gates its INT8 sibling; a held-out drive stays out of calibration
    split = info.entry.get("training", {}).get("val_split", "val")
    held = split.split(":", 1)[1] if split.startswith("holdout:") else None
    images = calibration_images(request.calib_data, request.calib_images, exclude_drive=held)
    gate_data = request.gate_data or request.calib_data
    # built and gated under a temporary name: a refused file never replaces (or deletes) the one shipped
    staged = output.with_name(f".{output.stem}.rtseg-{os.getpid()}.onnx")
    fp32 = load_slot(info, "onnxruntime")
    try:
        for bits in CPU_WEIGHT_BITS if request.qdq == "cpu" else ("8",):
            print(
                f"calibrating {info.name} on {len(images)} images ({request.calib_method}"
                + (f", {bits}-bit weights" if request.qdq == "cpu" else "")
                + ")"
                + (f", none of the held-out drive {held}" if held else "")
            )
            quantize_int8(info, staged, images, request.calib_method, request.qdq, weight_bits=bits)
            risks = saturation_risks(onnx.load(str(staged))) if request.qdq == "cpu" else []
            int8 = load_slot(resolve_model(str(staged)), "onnxruntime")
            try:
                verdict = gate_int8(fp32, int8, gate_data, split, request.max_drop, risks)
            finally:
                int8.close()
            print(f"accuracy gate: {verdict.message}")
            if verdict.ok:
                break
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    finally:
        fp32.close()
    if not verdict.ok and not request.force:
        staged.unlink(missing_ok=True)
        raise RtsegError(f"INT8 refused: {verdict.message}; keep FP32, or pass --force to ship it anyway")
    os.replace(staged, output)
    if request.manifest_path is not None:
        _record(request, info, name, output, split, gate_data, len(images), verdict, sha256(output), bits)
    print(f"wrote {output}" + (f" and its entry in {request.manifest_path}" if request.manifest_path else ""))
    return output


def _record(
    request: Int8Request,
    info,
    name: str,
    output: Path,
    split: str,
    gate_data: str,
    calibrated: int,
    verdict: GateVerdict,
    digest: str,
    weight_bits: str,
) -> None:
    """The INT8 file's manifest entry: its base's record, how it was quantized, and both measured figures."""
    from ..core.manifest import Manifest

    if request.manifest_path is None:  # the caller records only where a manifest was named
        raise ValueError("no manifest to record the INT8 model in")
    manifest = Manifest.load(request.manifest_path)
    base = manifest.entry(info.name) or info.entry
    # how the FP32 model was trained still holds (its selection split keeps eval's warnings right); its
    # training-time figures and notes describe the FP32 weights, not this file
    training = {k: v for k, v in base.get("training", {}).items() if k not in ("note", "train_val_metrics")}
    entry = {
        **{k: v for k, v in base.items() if k not in ("metrics", "weights")},
        "training": training,
        "name": name,
        "file": output.name,
        "precision": "int8",
        "base_model": info.name,
        "sha256": digest,
        "qdq": request.qdq,
        "quantization": {
            "method": f"ONNX Runtime static QDQ ({request.qdq} layout), per-channel"
            + (f", weights {WEIGHT_BITS_TEXT[weight_bits]}" if request.qdq == "cpu" else "")
            + f", {request.calib_method} calibration",
            "calibration_images": calibrated,
            "gate": verdict.message,
            "command": request.command,
        },
        "metrics": {},
    }
    manifest.add_or_replace(entry)
    keep = ("miou", "pixel_accuracy", "per_class_iou", "images", "input_size", "backend", "machine", "date")
    for kind, suffix, flag in (("plain", "", ""), ("stressed", "+stress", " --stress")):
        r = verdict.reports["int8"][kind]
        manifest.record_metrics(
            name,
            f"camvid_{split}{suffix}",
            {k: r[k] for k in keep} | {"command": f"rtseg eval --model {name} --data {gate_data} --split {split}{flag}"},
        )
    manifest.save()
