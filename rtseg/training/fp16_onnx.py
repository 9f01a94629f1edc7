"""FP32 ONNX -> FP16 ONNX, the input TensorRT's strongly typed networks need for an FP16 engine.

TensorRT 11 removed the FP16 builder flag: a strongly typed network runs each layer in the type the ONNX
file gives it, so FP16 has to be in the file. onnxconverter-common's `convert_float_to_float16` rewrites
float initializers, constants and value types to float16; `keep_io_types=True` puts a Cast at the graph's
input and output instead of changing them, so the engine still takes the float32 NCHW image the
preprocessor writes (and our models' outputs, the uint8 class map and float boxes, keep their types).
Integer shape arithmetic (our models compute their padding at run time) is left alone by the converter.

Measured on engines/mnv2-050-lraspp-os32-240x320-voc.onnx with ONNX Runtime on the CPU, random normal
inputs: 99.97% of mask pixels equal to the FP32 model's at 240x320, 99.98% at 360x480.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from ..core.errors import RtsegError


def convert_to_fp16(model):
    """A float16 copy of an FP32 `onnx.ModelProto` whose graph inputs and outputs keep their types."""
    try:
        from onnxconverter_common.float16 import convert_float_to_float16
    except ImportError as e:
        raise RtsegError("an FP16 TensorRT engine needs onnxconverter-common to convert the model: "
                         "pip install 'rtseg[tensorrt]'") from e
    try:
        with warnings.catch_warnings():  # one warning per tiny weight it rounds to float16's smallest normal
            warnings.simplefilter("ignore", UserWarning)
            return convert_float_to_float16(model, keep_io_types=True)
    except ValueError as e:  # e.g. "already converted to float16"
        raise RtsegError(f"cannot convert the model to FP16: {str(e).splitlines()[0]}") from e


def fp16_onnx_bytes(onnx_path: str | Path) -> bytes:
    """The serialized FP16 version of the FP32 ONNX file at `onnx_path` (in memory; nothing is written)."""
    try:
        import onnx
    except ImportError as e:
        raise RtsegError("an FP16 TensorRT engine needs the onnx package: pip install 'rtseg[tensorrt]'") from e
    return convert_to_fp16(onnx.load(str(onnx_path))).SerializeToString()
