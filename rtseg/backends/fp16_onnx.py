"""FP32 ONNX -> FP16 ONNX, the input TensorRT's strongly typed networks need for an FP16 engine (and for the
FP16 layers of an INT8 one).

TensorRT 11 removed the FP16 builder flag: a strongly typed network runs each layer in the type the ONNX
file gives it, so FP16 has to be in the file. onnxconverter-common's `convert_float_to_float16` rewrites
float initializers, constants and value types to float16; `keep_io_types=True` puts a Cast at the graph's
input and output instead of changing them, so the engine still takes the float32 NCHW image the
preprocessor writes (and our models' outputs, the uint8 class map and float boxes, keep their types).
Integer shape arithmetic (our models compute their padding at run time) is left alone by the converter.

The converter keeps Resize in FP32 by default (its block list dates from ONNX Runtime lacking FP16 Resize
kernels); for TensorRT that would leave the largest tensor of a segmentation model, the logits resized to the
full frame, in FP32, so Resize is converted too (unless it takes `scales`, which ONNX keeps float32).

A Q/DQ (INT8) graph converts the same way, the way NVIDIA's Model Optimizer finishes its INT8 quantization
(`high_precision_dtype="fp16"`, its default: `convert_to_f16(keep_io_types=True)` after quantizing): the
scales become float16, so every DequantizeLinear hands FP16 to the layers after it and what is not quantized
runs in FP16. QuantizeLinear/DequantizeLinear take float16 scales from ONNX opset 19 on (TensorRT 10.0's
parser reads opsets up to 20, and FP16 scales), so such a graph is converted to opset 19 first.

Measured on mnv2-050-lraspp-os32-240x320-voc (since retired from the wheel) with ONNX Runtime on the CPU, random normal
inputs: 99.97% of mask pixels equal to the FP32 model's at 240x320, 99.99% at 360x480, the same with Resize
in FP16 as in FP32.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..core.errors import RtsegError

QDQ_FP16_OPSET = 19  # the first opset whose QuantizeLinear/DequantizeLinear take float16 scales


def convert_to_fp16(model):
    """A float16 copy of an FP32 `onnx.ModelProto` (plain or Q/DQ) whose graph inputs and outputs keep their
    types."""
    try:
        import onnx
        from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    except ImportError as e:
        raise RtsegError("an FP16 TensorRT engine needs onnxconverter-common to convert the model: pip install 'rtseg[tensorrt]'") from e
    model = onnx.ModelProto.FromString(model.SerializeToString())  # the caller's model stays as it was
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        model = _at_least_opset(model, QDQ_FP16_OPSET)
    # Resize in FP16 too; one given `scales` keeps them float32, as ONNX requires, by staying FP32 itself
    block = [op for op in DEFAULT_OP_BLOCK_LIST if op != "Resize"]
    for i, node in enumerate(model.graph.node):
        if node.op_type == "Resize" and len(node.input) > 2 and node.input[2] and not node.name:
            node.name = f"Resize_{i}"
    keep_fp32 = [n.name for n in model.graph.node if n.op_type == "Resize" and len(n.input) > 2 and n.input[2]]
    output_types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    try:
        with warnings.catch_warnings():  # one warning per tiny weight it rounds to float16's smallest normal
            warnings.simplefilter("ignore", UserWarning)
            converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=block, node_block_list=keep_fp32)
    except ValueError as e:  # e.g. "already converted to float16"
        raise RtsegError(f"cannot convert the model to FP16: {str(e).splitlines()[0]}") from e
    return _outputs_as_they_were(_casts_to_float16(converted), output_types)


def _outputs_as_they_were(model, types: dict[str, int]):
    """Each graph output cast back to the type it had before conversion. `keep_io_types` misses outputs
    made by an op the converter keeps in float32 (the detection scores come out of TopK): it retypes them
    float16 when it casts that op's output."""
    from onnx import helper

    graph = model.graph
    for output in graph.output:
        was = types.get(output.name)
        now = output.type.tensor_type.elem_type
        if was is None or was == now:
            continue
        index, producer = next((i, n) for i, n in enumerate(graph.node) if output.name in n.output)
        converted = f"{output.name}_converted"
        producer.output[list(producer.output).index(output.name)] = converted
        for node in graph.node:  # a consumer inside the graph reads the converted tensor, as before
            for i, name in enumerate(node.input):
                if name == output.name:
                    node.input[i] = converted
        graph.node.insert(index + 1, helper.make_node("Cast", [converted], [output.name], to=was, name=f"{output.name}_cast_back"))
        graph.value_info.append(helper.make_tensor_value_info(converted, now, None))
        output.type.tensor_type.elem_type = was
    return model


def _casts_to_float16(model):
    """The graph's own Casts to float made Casts to float16 where the converter typed their output float16.

    The converter retypes every float tensor but leaves each Cast's `to` as it was, so a Cast to float inside
    the graph (the box decoding's Equal -> Cast, index -> Cast) would still make float32 where the tensor is
    declared, and its consumers expect, float16: ONNX Runtime refuses such a graph, and TensorRT's strongly
    typed network would meet float32 and float16 inputs in one layer. The converter's own Casts (graph
    inputs and outputs, around blocked ops) are declared float32 and keep it."""
    from onnx import TensorProto

    declared = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    for node in model.graph.node:
        if node.op_type == "Cast" and declared.get(node.output[0]) == TensorProto.FLOAT16:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                    attribute.i = TensorProto.FLOAT16
    return model


def _at_least_opset(model, opset: int):
    """`model` converted to the default domain's `opset` when it is older (ONNX's version converter adapts
    the ops whose form changed in between)."""
    from onnx import version_converter

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as e:  # an op the converter cannot adapt
        raise RtsegError(
            f"cannot convert the Q/DQ model from opset {current} to {opset} for FP16 scales: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__}"
        ) from e


def fp16_onnx_bytes(onnx_path: str | Path) -> bytes:
    """The serialized FP16 version of the FP32 ONNX file at `onnx_path` (in memory; nothing is written)."""
    try:
        import onnx
    except ImportError as e:
        raise RtsegError("an FP16 TensorRT engine needs the onnx package: pip install 'rtseg[tensorrt]'") from e
    return convert_to_fp16(onnx.load(str(onnx_path))).SerializeToString()
