"""`rtseg import`: your own segmentation model as an rtseg model, beside the shipped ones.

A webcam pointed at a room has no use for road classes. This turns a segmentation model into what rtseg
runs: one ONNX file whose graph ends in the argmax (class ids leave the runtime, one byte a pixel), with
rtseg's metadata (classes, colours, input size, normalisation) embedded, and an entry in the user models
manifest under $RTSEG_HOME/models (default ~/.local/share/rtseg/models), so `run`, `eval`, `bench`,
`profile` and `--target-fps` find it by name.

Accepted, anything else refused with one line:
- Google's TFLite DeepLabV3-MobileNetV2 files (quantized or float), rebuilt in PyTorch from their weights
  (models/tflite_mnv2.py) and exported; and Google's DeepLab MobileNet-EdgeTPU Cityscapes file
  (models/tflite_edgetpu.py), with Cityscapes' 19 class names and official colours. Which one a file is,
  is read from its operators, not its name;
- ONNX files with one NCHW 3-channel image input and either class logits (N, C, H, W) or class ids
  (N, H, W): rtseg appends the argmax or the cast.
Nothing is half-written: the file is built under a temporary name, checked by running it, then renamed,
and the manifest is written last.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from ..core.errors import RtsegError
from ..core.modelinfo import META_KEY
from ..core.names import check_model_name
from ..core.paths import MANIFEST

# class maps leave the model as one byte a pixel (uint8): ids 0..254, 255 kept for "no class"
MAX_CLASSES = 255

# PASCAL VOC 2012, the classes of Google's DeepLab files (0 = background)
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    name: str | None = None
    labels: Path | None = None  # one class name a line
    palette: Path | None = None  # one "R G B" (or R,G,B) a line
    mean: tuple[float, float, float] | None = None  # RGB, 0..1; default: the file's own (TFLite) or ImageNet's
    std: tuple[float, float, float] | None = None
    input_size: tuple[int, int] | None = None  # (height, width) to run at; default: the file's
    force: bool = False  # replace an imported model of the same name


def voc_palette(n: int) -> list[tuple[int, int, int]]:
    """PASCAL VOC's colour map (bit-interleaved class index): the colours VOC users already know."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def read_labels(path: Path) -> tuple[str, ...]:
    try:
        names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError as e:
        raise RtsegError(f"cannot read labels file {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise RtsegError(f"labels file {path} is not UTF-8 text (byte {e.start})") from e
    if not names:
        raise RtsegError(f"labels file {path} holds no class names (one a line)")
    return names


def read_palette(path: Path, n: int) -> list[tuple[int, int, int]]:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as e:
        raise RtsegError(f"cannot read palette file {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise RtsegError(f"palette file {path} is not UTF-8 text (byte {e.start})") from e
    colours = []
    for k, line in enumerate(lines, 1):
        parts = re.split(r"[\s,]+", line.strip())
        if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts):
            raise RtsegError(f"palette file {path}, line {k}: expected 'R G B' with values 0-255, got {line.strip()!r}")
        r, g, b = (int(p) for p in parts)
        colours.append((r, g, b))
    if len(colours) < n:
        raise RtsegError(f"palette file {path} has {len(colours)} colours for {n} classes")
    return colours[:n]


def import_model(req: ImportRequest, manifest_path: Path) -> dict:
    """Convert `req.path`, store it beside `manifest_path` and add its entry; returns the entry."""
    from ..core.manifest import Manifest

    if not req.path.is_file():
        raise RtsegError(f"no such model file: {req.path}")
    suffix = req.path.suffix.lower()
    if suffix not in (".tflite", ".onnx"):
        raise RtsegError(f"{req.path.name}: rtseg imports .tflite (DeepLabV3-MobileNetV2) and .onnx segmentation models")
    name = check_model_name(req.name if req.name is not None else re.sub(r"[^A-Za-z0-9_.+-]+", "-", req.path.stem).strip(".-_+") or "model")
    if name in Manifest.load(MANIFEST).names():  # shipped names win: an import under one could never run
        raise RtsegError(f"--name {name}: a shipped model has that name; pick another")
    folder = manifest_path.parent
    manifest = Manifest.load(manifest_path)  # a damaged one is refused here, before anything is written
    final = folder / f"{name}.onnx"
    if (manifest.entry(name) is not None or final.exists()) and not req.force:
        raise RtsegError(f"--name {name}: an imported model of that name exists ({final}); pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        staged = Path(tmp) / f"{name}.onnx"
        meta = (_from_tflite if suffix == ".tflite" else _from_onnx)(req, staged)
        meta = {"name": name, "task": "seg", **meta}
        if len(meta.get("classes", ())) > MAX_CLASSES:
            raise RtsegError(
                f"{req.path.name} predicts {len(meta['classes'])} classes; rtseg's class maps hold at most {MAX_CLASSES} (one byte a pixel)"
            )
        _embed_and_check(staged, meta)
        os.replace(staged, final)
    from ..core.modelinfo import sha256

    entry = {
        **meta,
        "file": final.name,
        "sha256": sha256(final),
        "precision": "fp32",
        "imported_from": {"file": str(req.path.resolve()), "sha256": sha256(req.path)},
        "metrics": {},
    }
    manifest.add_or_replace(entry)
    manifest.save()
    return entry


def _classes(req: ImportRequest, n: int, default: tuple[str, ...] | None) -> tuple[tuple[str, ...], list]:
    if req.labels:
        classes = read_labels(req.labels)
        if len(classes) != n:
            raise RtsegError(f"labels file {req.labels} names {len(classes)} classes, the model predicts {n}")
    elif default and len(default) == n:
        classes = default
    else:
        classes = tuple(f"class {i}" for i in range(n))
    palette = read_palette(req.palette, n) if req.palette else voc_palette(n)
    return classes, palette


def _from_tflite(req: ImportRequest, out: Path) -> dict:
    """A Google TFLite segmentation file rebuilt in PyTorch and exported; which network is read from the file."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as e:
        raise RtsegError("importing a .tflite model needs PyTorch: pip install 'rtseg[train]'") from e
    from ..models.tflite_edgetpu import is_edgetpu_deeplab
    from ..models.tflite_reader import read_tflite

    f = read_tflite(req.path)
    return (_from_edgetpu if is_edgetpu_deeplab(f) else _from_slim)(req, f, out)


def _from_slim(req: ImportRequest, f, out: Path) -> dict:
    """DeepLabV3-MobileNetV2 (PASCAL VOC): models/tflite_mnv2.py."""
    from ..models.tflite_mnv2 import SLIM_MEAN, SLIM_STD, SlimDeepLabV3, read_slim_tflite

    slim = read_slim_tflite(f)
    if slim.kind != "deeplab":
        raise RtsegError(f"{req.path.name} is an image classifier, not a segmentation model")
    classes, palette = _classes(req, slim.num_classes, VOC_CLASSES)
    size = req.input_size or slim.input_size
    _torch_export(_with_argmax(SlimDeepLabV3(slim).eval()), size, out)
    return _entry(req, size, classes, palette, SLIM_MEAN, SLIM_STD, {"kind": "deeplabv3-mobilenetv2 (TFLite)", "width": slim.width})


def _from_edgetpu(req: ImportRequest, f, out: Path) -> dict:
    """DeepLab MobileNet-EdgeTPU (Cityscapes' 19 classes, their official colours): models/tflite_edgetpu.py."""
    from ..data import cityscapes
    from ..models.tflite_edgetpu import SLIM_MEAN, SLIM_STD, EdgeTPUDeepLab

    net = EdgeTPUDeepLab(f).eval()
    n = len(net.classes)
    classes, palette = _classes(req, n, cityscapes.CLASSES)
    if not req.palette and n == len(cityscapes.CLASSES):
        palette = [tuple(int(v) for v in c) for c in cityscapes.PALETTE_RGB]
    size = req.input_size or net.input_size
    _torch_export(_with_argmax(net, segment=True), size, out)
    return _entry(req, size, classes, palette, SLIM_MEAN, SLIM_STD, {"kind": "deeplab-mobilenet-edgetpu (TFLite)", "output_stride": 16})


def _entry(
    req: ImportRequest,
    size: tuple[int, int],
    classes: tuple[str, ...],
    palette: list,
    mean: Sequence[float],
    std: Sequence[float],
    architecture: dict,
) -> dict:
    """The manifest fields every imported model has (the request's mean and std win over the format's own)."""
    return {
        "input_size": list(size),
        "classes": list(classes),
        "palette_rgb": [list(c) for c in palette],
        "mean": list(req.mean or mean),
        "std": list(req.std or std),
        "architecture": architecture,
    }


def _with_argmax(net, segment: bool = False):
    """`net` with the class map as its output (uint8): the logits at the input size, argmax over classes."""
    import torch

    class ArgMax(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return (self.net.segment(x) if segment else self.net(x)).argmax(1).to(torch.uint8)

    return ArgMax().eval()


def _torch_export(module, size: tuple[int, int], out: Path) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, *size),),
            str(out),
            opset_version=17,
            dynamo=False,
            input_names=["image"],
            output_names=["mask"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "mask": {0: "batch", 1: "height", 2: "width"}},
        )


def _from_onnx(req: ImportRequest, out: Path) -> dict:
    try:
        import onnx
        from onnx import TensorProto, helper
    except ModuleNotFoundError as e:
        raise RtsegError("importing an .onnx model needs the onnx package: pip install onnx") from e
    try:
        proto = onnx.load(str(req.path))
    except Exception as e:
        raise RtsegError(f"{req.path.name} is not a readable ONNX file ({e.__class__.__name__})") from e
    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise RtsegError(f"{req.path.name}: expected one image input, found {len(inputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3:
        raise RtsegError(f"{req.path.name}: the input must be an NCHW image with 3 channels, got shape {dims}")
    if len(graph.output) < 1:
        raise RtsegError(f"{req.path.name}: the graph has no output")
    output = graph.output[0]
    odims = [d.dim_value if d.HasField("dim_value") else None for d in output.type.tensor_type.shape.dim]
    if len(odims) == 4:  # logits: append the argmax over classes
        n = odims[1]
        if not n:
            raise RtsegError(f"{req.path.name}: the logits' class dimension is not fixed; cannot name the classes")
        graph.node.extend(
            [
                helper.make_node("ArgMax", [output.name], ["rtseg_ids"], axis=1, keepdims=0),
                helper.make_node("Cast", ["rtseg_ids"], ["mask"], to=TensorProto.UINT8),
            ]
        )
    elif len(odims) == 3:  # class ids already: only make them one byte
        if not req.labels:
            raise RtsegError(f"{req.path.name} outputs class ids: pass --labels FILE so rtseg knows how many and their names")
        n = len(read_labels(req.labels))
        graph.node.append(helper.make_node("Cast", [output.name], ["mask"], to=TensorProto.UINT8))
    else:
        raise RtsegError(f"{req.path.name}: the first output must be class logits (N, C, H, W) or class ids (N, H, W), got shape {odims}")
    mask_dims = [odims[0], odims[-2], odims[-1]]
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(
            "mask", TensorProto.UINT8, [d if d else ("batch", "height", "width")[i] for i, d in enumerate(mask_dims)]
        )
    )
    onnx.save(proto, str(out))
    classes, palette = _classes(req, n, None)
    h, w = dims[2], dims[3]
    size = req.input_size or ((h, w) if h and w else (360, 480))
    return _entry(req, size, classes, palette, IMAGENET_MEAN.tolist(), IMAGENET_STD.tolist(), {"kind": "imported ONNX"})


def _embed_and_check(path: Path, meta: dict) -> None:
    """Put rtseg's metadata in the file, then run it once: a file that cannot run is never installed."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
    onnx.save(proto, str(path))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        h, w = meta["input_size"]
        x = np.zeros((1, 3, h, w), np.float32)
        mask = session.run(["mask"], {session.get_inputs()[0].name: x})[0]
    except Exception as e:
        raise RtsegError(
            f"the converted model does not run in ONNX Runtime ({e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
        ) from e
    if mask.ndim != 3 or mask.dtype != np.uint8:
        raise RtsegError(f"the converted model gives {mask.dtype} {mask.shape}, not a (1, H, W) class map")
