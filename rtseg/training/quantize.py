"""INT8 for the CPU or for TensorRT: ONNX Runtime static quantization (QDQ, per-channel weights) with an
accuracy gate.

Calibration runs the FP32 model on training frames to fix activation ranges. The gate then measures
mIoU of both files on the split that selected the model (val, or for a model trained with a drive held
out, that drive, which calibration then leaves out too) and refuses the INT8 model when it loses more than
`max_drop` points: users of the alternatives lose accuracy silently with INT8; rtseg prints the numbers
and decides on them.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..core.constants import IMAGE_SUFFIXES
from ..core.errors import RtsegError
from ..core.modelinfo import META_KEY, ModelInfo
from ..runtime.preprocess import Preprocessor

# Two Q/DQ layouts, because no one file is right for both. "cpu": uint8 activations with zero points,
# int8 weights (U8S8), int32 biases: ONNX Runtime fuses these into its integer kernels, and the ReLU6
# clips vanish into the activation ranges. "tensorrt": symmetric int8 activations and weights (zero points
# 0) and float biases, the only explicit quantization TensorRT accepts; on the CPU it ran 2.9x slower than
# "cpu" here (mnv2-100-lraspp-os32-288x384-voc: 17.8 against 51.3 FPS, ONNX Runtime 1.32, 2 threads), so it
# is made for TensorRT engines only.
QDQ_LAYOUTS = {
    "cpu": dict(activation_type="QUInt8", extra_options={}),
    "tensorrt": dict(activation_type="QInt8",
                     extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}),
}


def calibration_images(folder: str | Path, count: int, exclude_drive: str | None = None) -> list[Path]:
    """`count` images spread evenly over a folder (or over <folder>/train for a CamVid-layout root), none of
    `exclude_drive` (a held-out drive must not tune the model it measures)."""
    from ..data.camvid import drive_of

    folder = Path(folder)
    if (folder / "train").is_dir():
        folder = folder / "train"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                   and (exclude_drive is None or drive_of(p) != exclude_drive)) if folder.is_dir() else []
    if not files:
        raise RtsegError(f"no calibration images in {folder}")
    step = max(1, len(files) // count)
    return files[::step][:count]


def gate(reference_miou: float, int8_miou: float, max_drop: float, reference: str = "FP32",
         split: str = "val") -> tuple[bool, str]:
    """Accept INT8 only if it keeps mIoU within `max_drop` points (percent) of the reference precision."""
    drop = 100 * (reference_miou - int8_miou)
    verdict = drop <= max_drop
    return verdict, (f"{split} mIoU {reference} {100 * reference_miou:.2f}, INT8 {100 * int8_miou:.2f}: drop {drop:.2f} "
                     f"points ({'within' if verdict else 'over'} the {max_drop:g}-point limit)")


def preprocessed(info: ModelInfo, images: list[Path], size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Calibration frames exactly as the pipeline feeds them: (1, 3, H, W) float32, normalised RGB."""
    size = size or info.input_size
    pre = Preprocessor(size, info.mean, info.std, pool_size=1)
    frames = []
    for f in images:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise RtsegError(f"cannot read calibration image {f}")
        frames.append(pre(img, out=np.empty((1, 3, *size), np.float32)))
    return frames


def quantize_int8(info: ModelInfo, output: Path, images: list[Path], method: str = "minmax", layout: str = "cpu") -> Path:
    """Static INT8 Q/DQ of `info` into `output`, calibrated on `images`; `layout` is a key of QDQ_LAYOUTS."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.frames = iter(preprocessed(info, images))

        def get_next(self):
            x = next(self.frames, None)
            return None if x is None else {"image": x}

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory() as d:
        prepared = Path(d) / "prepared.onnx"
        quant_pre_process(str(info.path), str(prepared), skip_symbolic_shape=True)  # fold, infer shapes
        how = QDQ_LAYOUTS[layout]
        quantize_static(str(prepared), str(output), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=getattr(QuantType, how["activation_type"]), weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], extra_options=how["extra_options"])
    # quantization drops metadata: put rtseg's back, marked as the INT8 sibling of the FP32 model
    proto = onnx.load(str(output))
    meta = {**{k: v for k, v in info.entry.items() if k in ("task", "input_size", "classes", "palette_rgb", "mean", "std",
                                                             "det_classes", "architecture")},
            "name": output.stem, "precision": "int8", "base_model": info.name, "qdq": layout}
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
    onnx.save(proto, str(output))
    return output
