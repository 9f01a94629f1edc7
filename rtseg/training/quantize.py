"""INT8 for the CPU or for TensorRT: ONNX Runtime static quantization (QDQ, per-channel weights) with an
accuracy gate.

Calibration runs the FP32 model on training frames to fix activation ranges. The gate then measures
mIoU of both files on the split that selected the model (val, or for a model trained with a drive held
out, that drive, which calibration then leaves out too) and on photometrically stressed copies of it, and
refuses the INT8 model when it loses more than `max_drop` points on either: users of the alternatives lose
accuracy silently with INT8; rtseg prints the numbers and decides on them.

Why 7-bit weights on the CPU: x86 CPUs without VNNI (AVX2 and AVX-512 before Cascade Lake, AMD before
Zen 4) multiply uint8 activations by int8 weights with VPMADDUBSW, which adds each pair of products into
a 16-bit integer and saturates there. Bright pixels (a sky near 255) times two large same-signed weights
overflow it: under QEMU emulating a Haswell CPU, the full-range file of mnv2-050-dlv3p-os16-240x320-voc
labelled half the sky of a 0006R0 frame as Building, while on a VNNI CPU (where the gate runs) it matched
FP32 (benchmarks/int8_portability.py). Weights within +-64 cannot overflow (255 * 128 < 32767), on any CPU;
ONNX Runtime's `reduce_range` is that, and `saturation_risks` checks a file for it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import cv2
import numpy as np

from ..core.constants import IMAGE_SUFFIXES
from ..core.errors import RtsegError
from ..core.modelinfo import META_KEY, ModelInfo
from ..runtime.preprocess import Preprocessor


class QDQLayout(TypedDict):
    activation_type: str  # a name in onnxruntime.quantization.QuantType
    extra_options: dict[str, Any]  # quantize_static's extra_options


# Two Q/DQ layouts, because no one file is right for both. "cpu": uint8 activations with zero points,
# int8 weights (U8S8), int32 biases: ONNX Runtime fuses these into its integer kernels, and the ReLU6
# clips vanish into the activation ranges. "tensorrt": symmetric int8 activations and weights (zero points
# 0) and float biases, the only explicit quantization TensorRT accepts; on the CPU it ran 2.9x slower than
# "cpu" here (mnv2-100-lraspp-os32-288x384-voc, since retired: 17.8 against 51.3 FPS, ONNX Runtime 1.32, 2 threads), so it
# is made for TensorRT engines only.
QDQ_LAYOUTS: dict[str, QDQLayout] = {
    "cpu": dict(activation_type="QUInt8", extra_options={}),
    "tensorrt": dict(activation_type="QInt8", extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}),
}


# The cpu layout's weight recipes, tried in this order until one passes the gate: "7-gemm" keeps 7-bit
# weights only where ONNX Runtime multiplies as a matrix product (depthwise kernels widen to 16 bits first
# and keep all 8); "7" gives every weight 7 bits. Both are safe on every CPU; which loses less on stressed
# frames depends on the model (mnv2-050-dlv3p-os16-240x320-voc: 2.4 against 1.3 points), so the gate decides.
CPU_WEIGHT_BITS = ("7-gemm", "7")

# the largest int8 weight magnitude a uint8 x int8 pair sum keeps inside int16 (255 * 2 * 64 = 32640)
U8S8_SAFE_WEIGHT = 64


def saturation_risks(model) -> list[str]:
    """Convolutions and matrix products of a Q/DQ model (an `onnx.ModelProto`) that take uint8 activations
    and int8 weights beyond +-64: the ones a CPU without VNNI can compute wrong (saturated), by name."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    made_by = {out: n for n in model.graph.node for out in n.output}
    risky = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2 or _group(node) != 1:
            continue  # depthwise kernels widen to 16 bits before multiplying: they cannot saturate
        act, weight = made_by.get(node.input[0]), made_by.get(node.input[1])
        if act is None or weight is None or act.op_type != "DequantizeLinear" or weight.op_type != "DequantizeLinear":
            continue
        act_q, w_q = inits.get(act.input[0]), inits.get(weight.input[0])
        act_type = act_q.data_type if act_q is not None else _quantized_type(made_by.get(act.input[0]), inits)
        if act_type != TensorProto.UINT8 or w_q is None or w_q.data_type != TensorProto.INT8:
            continue
        if int(abs(numpy_helper.to_array(w_q).astype(np.int16)).max()) > U8S8_SAFE_WEIGHT:
            risky.append(node.name or node.output[0])
    return risky


def gemm_weights(graph) -> list[str]:
    """Weight initializers of the convolutions ONNX Runtime computes as matrix products (every Conv but the
    depthwise ones, whose kernel widens to 16 bits before multiplying and cannot saturate) and of MatMul/Gemm."""
    inits = {t.name: t for t in graph.initializer}
    names = []
    for n in graph.node:
        if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits:
            names.append(n.input[1])
        elif n.op_type == "Conv" and n.input[1] in inits and _group(n) == 1:
            names.append(n.input[1])
    return names


def _group(node) -> int:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)


def _quantized_type(quantize, inits: dict) -> int | None:
    """The element type a QuantizeLinear node makes (its zero point's type; uint8 when it has none)."""
    from onnx import TensorProto

    if quantize is None or quantize.op_type != "QuantizeLinear":
        return None
    zero = inits.get(quantize.input[2]) if len(quantize.input) > 2 and quantize.input[2] else None
    return zero.data_type if zero is not None else TensorProto.UINT8


def calibration_images(folder: str | Path, count: int, exclude_drive: str | None = None) -> list[Path]:
    """`count` images spread evenly over a folder (or over <folder>/train for a CamVid-layout root), none of
    `exclude_drive` (a held-out drive must not tune the model it measures)."""
    from ..data.camvid import drive_of

    folder = Path(folder)
    if (folder / "train").is_dir():
        folder = folder / "train"
    files = (
        sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and (exclude_drive is None or drive_of(p) != exclude_drive)
        )
        if folder.is_dir()
        else []
    )
    if not files:
        raise RtsegError(f"no calibration images in {folder}")
    step = max(1, len(files) // count)
    return files[::step][:count]


def gate(reference_miou: float, int8_miou: float, max_drop: float, reference: str = "FP32", split: str = "val") -> tuple[bool, str]:
    """Accept INT8 only if it keeps mIoU within `max_drop` points (percent) of the reference precision.

    Example:
        >>> gate(0.60, 0.595, 1.0)
        (True, 'val mIoU FP32 60.00, INT8 59.50: drop 0.50 points (within the 1-point limit)')
    """
    drop = 100 * (reference_miou - int8_miou)
    verdict = drop <= max_drop
    return verdict, (
        f"{split} mIoU {reference} {100 * reference_miou:.2f}, INT8 {100 * int8_miou:.2f}: drop {drop:.2f} "
        f"points ({'within' if verdict else 'over'} the {max_drop:g}-point limit)"
    )


def preprocessed(
    info: ModelInfo, images: list[Path], size: tuple[int, int] | None = None, stresses: tuple[str, ...] = ()
) -> list[np.ndarray]:
    """Calibration frames exactly as the pipeline feeds them: (1, 3, H, W) float32, normalised RGB; each
    image also under every photometric stress in `stresses` (`data/photometric.py`)."""
    from ..data.photometric import stress

    size = size or info.input_size
    pre = Preprocessor(size, info.mean, info.std, pool_size=1)
    frames = []
    for f in images:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise RtsegError(f"cannot read calibration image {f}")
        for view in (img, *(stress(img, k) for k in stresses)):
            frames.append(pre(view, out=np.empty((1, 3, *size), np.float32)))
    return frames


def quantize_int8(
    info: ModelInfo,
    output: Path,
    images: list[Path],
    method: str = "minmax",
    layout: str = "cpu",
    stresses: tuple[str, ...] = (),
    keep_float: tuple[str, ...] = (),
    weight_bits: str = "7-gemm",
) -> Path:
    """Static INT8 Q/DQ of `info` into `output`, calibrated on `images` (and their `stresses`); `layout` is a
    key of QDQ_LAYOUTS; `keep_float`: "first" and/or "last" convolution left in FP32; `weight_bits` (cpu
    layout only, one of CPU_WEIGHT_BITS): which weights keep 7 bits so no CPU can saturate."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.frames = iter(preprocessed(info, images, stresses=stresses))

        def get_next(self):
            x = next(self.frames, None)
            return None if x is None else {"image": x}

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory() as d:
        prepared = Path(d) / "prepared.onnx"
        quant_pre_process(str(info.path), str(prepared), skip_symbolic_shape=True)  # fold, infer shapes
        how = QDQ_LAYOUTS[layout]
        graph = onnx.load(str(prepared)).graph
        convs = [n.name for n in graph.node if n.op_type == "Conv"]
        exclude = ([convs[0]] if "first" in keep_float else []) + ([convs[-1]] if "last" in keep_float else [])
        extra = dict(how["extra_options"])
        weights = weight_bits if layout == "cpu" else "8"
        if weights == "7-gemm":
            extra["TensorQuantOverrides"] = {w: [{"reduce_range": True}] for w in gemm_weights(graph)}
        quantize_static(
            str(prepared),
            str(output),
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=weights == "7",
            activation_type=getattr(QuantType, how["activation_type"]),
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            nodes_to_exclude=exclude,
            extra_options=extra,
        )
    # quantization drops metadata: put rtseg's back, marked as the INT8 sibling of the FP32 model
    proto = onnx.load(str(output))
    meta = {
        **{
            k: v
            for k, v in info.entry.items()
            if k in ("task", "input_size", "classes", "palette_rgb", "mean", "std", "det_classes", "architecture")
        },
        "name": output.stem,
        "precision": "int8",
        "base_model": info.name,
        "qdq": layout,
    }
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
    onnx.save(proto, str(output))
    return output
