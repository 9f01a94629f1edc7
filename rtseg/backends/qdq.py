"""Explicitly quantized (Q/DQ) ONNX graphs for TensorRT: which file an INT8 engine is built from, and whether
TensorRT's explicit quantization can take it.

Graph checks, not training: the TensorRT backend runs them before it builds an INT8 engine
(`tensorrt.engine_source`), `rtseg export --format engine` (training/engine_export.py) through the backend.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo

QDQ = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED = ("Conv", "ConvTranspose", "Gemm")  # ops whose input 2 is a bias


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
    siblings = [
        entry
        for path in (MANIFEST, user_manifest())
        for entry in Manifest.load(path).models
        if entry.get("base_model") == info.name and entry.get("precision") == "int8"
    ]
    for entry in siblings:  # the TensorRT layout first: the CPU one is refused by the Q/DQ check
        if entry.get("qdq") == "tensorrt":
            return resolve_model(entry["name"])
    make = f"`rtseg export --model {info.name} --precision int8 --qdq tensorrt --calib-data DIR`"
    if siblings:
        raise RtsegError(
            f"{siblings[0]['name']} is quantized for the CPU (uint8 activations), which TensorRT "
            f"cannot take: make a TensorRT INT8 model with {make}"
        )
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

    found: Counter[str] = Counter()
    first: dict[str, str] = {}  # problem -> the first node showing it

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
            qtype = (
                constants[zp].data_type
                if zp in constants
                else (constants[source].data_type if source in constants else quantized_type.get(source))
            )
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
        raise RtsegError(
            f"INT8 model {name} is not quantized the way TensorRT needs: {problems[0]}{more}; "
            "re-export it symmetric: int8 activations and weights, zero points 0, float biases"
        )
