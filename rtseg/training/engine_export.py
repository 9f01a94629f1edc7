"""`rtseg export --format engine`: a TensorRT engine for a shipped ONNX model, built once and cached.

Precision comes from the ONNX file TensorRT parses (strongly typed networks; TensorRT 11 has no precision
flags and no calibrator): FP32 from the model itself, FP16 from an FP16 conversion of it, INT8 from the
model's INT8 sibling, an explicitly quantized (Q/DQ) ONNX file, which has to follow TensorRT's rules for
explicit quantization (`check_symmetric_qdq`). The INT8 engine is then gated: its val mIoU is measured
against the FP16 engine's, and when it loses more than `max_drop` points it is discarded and FP16 is used,
with both numbers printed.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo
from .quantize import gate

log = logging.getLogger(__name__)
QDQ = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED = ("Conv", "ConvTranspose", "Gemm")  # ops whose input 2 is a bias


def int8_decision(fp16_miou: float, int8_miou: float, max_drop: float, force: bool = False) -> tuple[str, str]:
    """("int8" | "fp16", the gate's numbers) from the two measured val mIoUs."""
    ok, message = gate(fp16_miou, int8_miou, max_drop, reference="FP16")
    if ok:
        return "int8", message
    return ("int8", f"{message}; kept anyway (--force)") if force else ("fp16", f"{message}; INT8 refused, use FP16")


# -- INT8: which file, and whether TensorRT can take it ----------------------------------------------
def is_quantized(model) -> bool:
    """Whether an `onnx.ModelProto` holds Q/DQ nodes (an explicitly quantized model)."""
    return any(n.op_type in QDQ for n in model.graph.node)


def int8_model(info: ModelInfo) -> ModelInfo:
    """The INT8 Q/DQ model an INT8 engine of `info` is built from: the model itself when it is quantized,
    else its INT8 sibling (`base_model` = its name) in the shipped or the user's manifest."""
    from ..core.manifest import Manifest
    from ..core.modelinfo import MANIFEST, resolve_model, user_manifest

    if info.entry.get("precision") == "int8":
        return info
    siblings = [entry for path in (MANIFEST, user_manifest()) for entry in Manifest.load(path).models
                if entry.get("base_model") == info.name and entry.get("precision") == "int8"]
    for entry in siblings:  # the TensorRT layout first: the CPU one is refused by the Q/DQ check
        if entry.get("qdq") == "tensorrt":
            return resolve_model(entry["name"])
    make = f"`rtseg export --model {info.name} --precision int8 --qdq tensorrt --calib-data DIR`"
    if siblings:
        raise RtsegError(f"{siblings[0]['name']} is quantized for the CPU (uint8 activations), which TensorRT "
                         f"cannot take: make a TensorRT INT8 model with {make}")
    raise RtsegError(f"no INT8 model of {info.name} to build an INT8 engine from: make one with {make}")


def check_symmetric_qdq(model) -> list[str]:
    """What keeps TensorRT from building an explicitly quantized `onnx.ModelProto`; empty when nothing does.

    The rules are those of TensorRT's explicit quantization and its ONNX parser (QuantizeLinear /
    DequantizeLinear import): signed int8 only (no uint8 zero points), zero points constant and all 0
    (symmetric), scales constant and positive,
    per-channel scales only on constant weights, every QuantizeLinear feeding only DequantizeLinears (Q/DQ
    pairs) and every DequantizeLinear reading a QuantizeLinear or int8 weights, and biases left in float
    (no int32 DequantizeLinear, no DequantizeLinear into a Conv/Gemm bias). One line per kind of problem,
    with how many nodes have it and the first one's name.

    A QuantizeLinear without a zero point is uint8 to ONNX but INT8 to TensorRT: its parser quantizes to INT8
    unless a zero point (or `output_dtype`) says otherwise ("ONNX default is UINT8, TRT will default to INT8",
    QuantDequantLinearHelper in onnx-tensorrt), so such a file is taken (ONNX Runtime reads it as uint8: the
    accuracy gate measures the engine, not ONNX Runtime).
    """
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            constants[n.output[0]] = n.attribute[0].t
    consumers = defaultdict(list)
    for n in graph.node:
        for i, name in enumerate(n.input):
            consumers[name].append((n, i))
    quantized_type = {}  # tensor -> element type of Q outputs and constant DQ inputs

    def values(name):
        return numpy_helper.to_array(constants[name]) if name in constants else None

    found = Counter()
    first = {}

    def problem(text: str, node) -> None:
        found[text] += 1
        first.setdefault(text, node.name or node.output[0])

    nodes = [n for n in graph.node if n.op_type in QDQ]
    if not nodes:
        return ["no QuantizeLinear/DequantizeLinear nodes: not an explicitly quantized (Q/DQ) model"]
    for n in nodes:  # Q nodes first, so a DQ knows the type of the Q it reads
        if n.op_type == "QuantizeLinear":
            zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
            to = next((a.i for a in n.attribute if a.name == "output_dtype"), 0)
            quantized_type[n.output[0]] = constants[zp].data_type if zp in constants else (to or TensorProto.INT8)
    for n in nodes:
        zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if n.op_type == "QuantizeLinear":
            qtype = quantized_type[n.output[0]]
            if any(c.op_type != "DequantizeLinear" for c, _ in consumers[n.output[0]]) or not consumers[n.output[0]]:
                problem("QuantizeLinear not followed only by DequantizeLinear (TensorRT needs Q/DQ pairs)", n)
        else:
            source = n.input[0]
            qtype = constants[zp].data_type if zp in constants else (
                constants[source].data_type if source in constants else quantized_type.get(source))
            if source not in constants and source not in quantized_type:
                problem("DequantizeLinear reading neither a QuantizeLinear nor int8 weights", n)
            if any(c.op_type in WEIGHTED and i == 2 for c, i in consumers[n.output[0]]):
                problem("bias quantized (TensorRT takes float biases and quantizes them itself)", n)
        if qtype == TensorProto.UINT8:
            problem("uint8 quantization (TensorRT takes signed int8 only)", n)
        elif qtype == TensorProto.INT32:
            problem("int32 quantization (a quantized bias; TensorRT takes int8 only)", n)
        elif qtype is not None and qtype != TensorProto.INT8:
            problem(f"{TensorProto.DataType.Name(qtype).lower()} quantization (only int8 is checked here)", n)
        if zp is not None and zp not in constants:
            problem("zero point not a constant", n)
        elif zp is not None and (values(zp) != 0).any():
            problem("non-zero zero point (asymmetric; TensorRT supports symmetric quantization only)", n)
        scale = values(n.input[1])
        if scale is None:
            problem("scale not a constant", n)
        elif not (np.isfinite(scale) & (scale > 0)).all():
            problem("scale not positive and finite", n)
        elif scale.size > 1 and n.input[0] not in constants and n.op_type == "QuantizeLinear":
            problem("per-channel quantization of an activation (TensorRT quantizes activations per tensor)", n)
    return [f"{count} node(s): {text} (first: {first[text]})" for text, count in found.items()]


def refuse_unless_trt_ready(model, name: str) -> None:
    """An RtsegError of one line when TensorRT cannot build the INT8 model `name`."""
    problems = check_symmetric_qdq(model)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RtsegError(f"INT8 model {name} is not quantized the way TensorRT needs: {problems[0]}{more}; "
                         "re-export it symmetric: int8 activations and weights, zero points 0, float biases")


# -- the command -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineRequest:
    """`rtseg export --format engine`: which model, at what precision and shapes, and how INT8 is gated."""

    model: str                                  # a shipped FP32 model's name or an .onnx path
    precision: str = "fp16"                     # fp32 | fp16 | int8
    # (height, width) each; none given: the profile `rtseg run` builds (every size the selector may run the
    # model at, tuned for its own), so the engine exported is the one runs find in the cache
    min_shape: tuple[int, int] | None = None
    opt_shape: tuple[int, int] | None = None
    max_shape: tuple[int, int] | None = None
    cache_dir: str | None = None                # default: the engine cache under rtseg's cache folder
    calib_data: str | None = None               # int8: default gate data (the Q/DQ model was calibrated when exported)
    calib_images: int = 200                     # unused since TensorRT stopped calibrating; kept for the CLI
    gate_data: str | None = None                # int8: whose val split the gate measures (default: calib_data)
    max_drop: float = 1.0                       # int8: largest val mIoU loss accepted, in points
    force: bool = False                         # int8: keep it even if the gate fails


def export_engine(request: EngineRequest) -> dict:
    """Build (or find in the cache) the engine the request describes; for INT8 with gate data, measure it
    against FP16 and fall back to FP16 when it loses too much. Returns what was kept and where."""
    from ..backends.engine_cache import ShapeProfile
    from ..backends.tensorrt import TensorRTBackend
    from ..core.modelinfo import resolve_model

    info = resolve_model(request.model)
    if info.entry.get("precision", "fp32") != "fp32":
        raise RtsegError(f"{info.name} is already quantized; build engines from the FP32 model "
                         f"({info.entry.get('base_model', 'its base model')}) with --precision int8")
    shapes = (request.min_shape, request.opt_shape, request.max_shape)
    # none given: the backend picks the profile `rtseg run` does (`default_profile`, or the one size a
    # model with a fixed input shape takes), so the engine exported is the one runs find in the cache
    profile = ShapeProfile.parse(*shapes, default=info.input_size) if any(shapes) else None

    def load(precision: str) -> TensorRTBackend:
        return TensorRTBackend(info.path, precision=precision, profile=profile, cache_dir=request.cache_dir, info=info)

    backend = load(request.precision)
    backend.close()  # the engine is in the cache now; the gate below loads what it measures
    result = {"model": info.name, "precision": backend.precision, "profile": backend.profile.label(),
              "engine": str(backend.engine_path), "megabytes": round(backend.engine_bytes / 1e6, 2)}
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

    slot = ModelSlot.around(info, backend, backend.profile.opt)
    try:
        return evaluate(slot, data, "val", progress=False)["miou"]
    finally:
        slot.close()
