"""TFLite files read without an interpreter: the operator list, each operator's options, constants as float32.

rtseg rebuilds Google's pretrained TFLite networks in PyTorch (tflite_mnv2.py: MobileNetV2 and DeepLabV3;
tflite_edgetpu.py: DeepLab MobileNet-EdgeTPU). Both need the same few things from the flatbuffer, and this
is the one module that knows its layout (the `tflite` package's generated classes): which operator comes
next, what it reads and writes, its options in plain words, and its weights dequantized. What a network
*is* stays in the port that builds it.

    f = read_tflite("model.tflite")
    for op in f.ops:
        if op.kind == "CONV_2D":
            conv = f.conv(op)    # weights in PyTorch's layout, stride, dilation, padding, activation
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..core.errors import RtsegError

# The flatbuffer's enums, in the words the ports use (tflite.Padding, tflite.ActivationFunctionType).
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit"}


@dataclass(frozen=True)
class TFLiteOp:
    """One operator: its builtin name, tensor indices (-1: an optional input left out) and options.

    `options` holds what rtseg's ports use, by operator kind:
    CONV_2D / DEPTHWISE_CONV_2D: stride, dilation (height; the files are square), padding (SAME | VALID),
    activation (none | relu | relu6 ...), and depth_multiplier for depthwise; AVERAGE_POOL_2D / MAX_POOL_2D:
    filter (h, w), stride, padding, activation; RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR: align_corners,
    half_pixel; CONCATENATION: axis, activation; ADD / SUB / MUL: activation. Other kinds: empty.
    """

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)


@dataclass
class ConvLayer:
    """One convolution of a file, dequantized, in PyTorch's layout (batch norm stays folded into the bias)."""

    scope: str
    weight: np.ndarray  # (out, in/groups, kh, kw) float32
    bias: np.ndarray  # (out,) float32: the folded batch norm's shift
    stride: int
    dilation: int
    depthwise: bool
    activation: str  # relu6 | relu | none
    padding: str = "SAME"  # SAME | VALID
    input: int = -1  # tensor indices, for following the graph
    output: int = -1
    output_range: tuple[float, float] | None = None  # what the quantized output can hold (`value_range`)


class TFLiteFile:
    """A parsed TFLite flatbuffer (first subgraph): operators, tensor names and shapes, constants."""

    def __init__(self, path: Path, model, graph):
        self.path = path
        self._model = model
        self._graph = graph

    @cached_property
    def ops(self) -> list[TFLiteOp]:
        import tflite

        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        out = []
        for i in range(self._graph.OperatorsLength()):
            op = self._graph.Operators(i)
            code = self._model.OperatorCodes(op.OpcodeIndex())
            # files from before the int32 opcode field keep it in DeprecatedBuiltinCode
            kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            out.append(
                TFLiteOp(i, kind, tuple(int(t) for t in op.InputsAsNumpy()), tuple(int(t) for t in op.OutputsAsNumpy()), _options(op, kind))
            )
        return out

    @property
    def inputs(self) -> tuple[int, ...]:
        return tuple(int(t) for t in self._graph.InputsAsNumpy())

    @property
    def outputs(self) -> tuple[int, ...]:
        return tuple(int(t) for t in self._graph.OutputsAsNumpy())

    def name(self, index: int) -> str:
        """A tensor's full name (the converter joins fused ops' names with ';')."""
        return self._graph.Tensors(index).Name().decode()

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self._graph.Tensors(index).ShapeAsNumpy())

    def quantization(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(scale, zero point) of a quantized tensor, None for a float one."""
        quant = self._graph.Tensors(index).Quantization()
        if quant is None or quant.ScaleLength() == 0:
            return None
        return quant.ScaleAsNumpy().astype(np.float32), quant.ZeroPointAsNumpy().astype(np.float32)

    def value_range(self, index: int) -> tuple[float, float] | None:
        """The real values a quantized tensor can hold, (lowest, highest); None for a float tensor.

        Quantization-aware training learns these ranges and clips to them in its forward pass, so they are
        part of what the network computes, not only of how it is stored."""
        import tflite

        q = self.quantization(index)
        levels = {tflite.TensorType.UINT8: (0, 255), tflite.TensorType.INT8: (-128, 127), tflite.TensorType.INT16: (-32768, 32767)}.get(
            self._graph.Tensors(index).Type()
        )
        if q is None or levels is None or q[0].size != 1:
            return None
        (scale,), (zero,) = q
        return float((levels[0] - zero) * scale), float((levels[1] - zero) * scale)

    def dequantize(self, index: int) -> np.ndarray:
        """A constant tensor as float32: (q - zero point) * scale, per channel where the file says so."""
        import tflite

        t = self._graph.Tensors(index)
        raw = self._model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw is None or len(raw) == 0:
            raise RtsegError(f"tensor {t.Name().decode()} holds no constant data")
        dtype = {
            tflite.TensorType.UINT8: np.uint8,
            tflite.TensorType.INT8: np.int8,
            tflite.TensorType.INT32: np.int32,
            tflite.TensorType.FLOAT32: np.float32,
            tflite.TensorType.INT64: np.int64,
        }.get(t.Type())
        if dtype is None:
            raise RtsegError(f"tensor {t.Name().decode()}: unsupported type {t.Type()}")
        q = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(t.ShapeAsNumpy()).astype(np.float32)
        quant = t.Quantization()
        if dtype == np.float32 or quant is None or quant.ScaleLength() == 0:
            return q
        scale, zero = quant.ScaleAsNumpy().astype(np.float32), quant.ZeroPointAsNumpy().astype(np.float32)
        if scale.size > 1:  # per-channel: broadcast along the quantized dimension
            shape = [1] * q.ndim
            shape[quant.QuantizedDimension()] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return (q - zero) * scale

    def conv(self, op: TFLiteOp, scope: str = "") -> ConvLayer:
        """A CONV_2D or DEPTHWISE_CONV_2D operator as a `ConvLayer` (weights transposed to PyTorch's layout)."""
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            raise ValueError(f"operator {op.index} is {op.kind}, not a convolution")
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        w = self.dequantize(op.inputs[1])
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        b = self.dequantize(op.inputs[2]) if has_bias else np.zeros(w.shape[3 if depthwise else 0], np.float32)
        # TFLite: conv OHWI, depthwise 1HWO; PyTorch: OIHW, depthwise O1HW
        w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)
        o = op.options
        return ConvLayer(
            scope,
            np.ascontiguousarray(w),
            b,
            o["stride"],
            o["dilation"],
            depthwise,
            o["activation"],
            o["padding"],
            op.inputs[0],
            op.outputs[0],
            self.value_range(op.outputs[0]),
        )


def read_tflite(path: str | Path) -> TFLiteFile:
    """Open a TFLite file; a missing `tflite` package, an unreadable file or another format is one RtsegError."""
    try:
        import tflite
    except ModuleNotFoundError as e:
        raise RtsegError("reading TFLite files needs the 'tflite' package: pip install 'rtseg[train]'") from e
    path = Path(path)
    try:
        buf = path.read_bytes()
        model = tflite.Model.GetRootAsModel(buf, 0)
        graph = model.Subgraphs(0)
        graph.OperatorsLength()
        f = TFLiteFile(path, model, graph)
        f.ops  # noqa: B018 -- parse now: a damaged file fails here, not in the middle of a port
    except OSError as e:
        raise RtsegError(f"cannot read {path}: {e.strerror}") from e
    except Exception as e:  # the flatbuffer parser raises anything on a file of another kind
        raise RtsegError(f"{path} is not a TFLite model ({e.__class__.__name__})") from e
    return f


def _options(op, kind: str) -> dict:
    """An operator's builtin options in plain words (see `TFLiteOp`)."""
    import tflite

    cls = {
        "CONV_2D": tflite.Conv2DOptions,
        "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "AVERAGE_POOL_2D": tflite.Pool2DOptions,
        "MAX_POOL_2D": tflite.Pool2DOptions,
        "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
        "RESIZE_NEAREST_NEIGHBOR": tflite.ResizeNearestNeighborOptions,
        "CONCATENATION": tflite.ConcatenationOptions,
        "ADD": tflite.AddOptions,
        "SUB": tflite.SubOptions,
        "MUL": tflite.MulOptions,
    }.get(kind)
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    o = cls()
    o.Init(table.Bytes, table.Pos)
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        out = {
            "stride": o.StrideH(),
            "dilation": o.DilationHFactor(),
            "padding": PADDING.get(o.Padding(), "?"),
            "activation": ACTIVATIONS.get(o.FusedActivationFunction(), "?"),
        }
        if kind == "DEPTHWISE_CONV_2D":
            out["depth_multiplier"] = o.DepthMultiplier()
        return out
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return {
            "filter": (o.FilterHeight(), o.FilterWidth()),
            "stride": o.StrideH(),
            "padding": PADDING.get(o.Padding(), "?"),
            "activation": ACTIVATIONS.get(o.FusedActivationFunction(), "?"),
        }
    if kind in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        return {"align_corners": bool(o.AlignCorners()), "half_pixel": bool(o.HalfPixelCenters())}
    if kind == "CONCATENATION":
        return {"axis": o.Axis(), "activation": ACTIVATIONS.get(o.FusedActivationFunction(), "?")}
    return {"activation": ACTIVATIONS.get(o.FusedActivationFunction(), "?")}
