"""Resolve `--model NAME|PATH` to a model file and the metadata needed to run it.

Shipped models are listed in `engines/manifest.json`. A bare ONNX file also works: rtseg's exporter
embeds the same metadata in the file, and for foreign ONNX files the input size is read from the graph.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .constants import CAMVID_CLASSES as CLASSES
from .constants import CAMVID_PALETTE_RGB as PALETTE_RGB
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import RtsegError
from .manifest import Manifest
from .paths import ENGINES_DIR, MANIFEST, user_manifest  # noqa: F401  (re-exported: callers name the manifest through here)

META_KEY = "rtseg"  # ONNX metadata_props key holding the JSON metadata


@dataclass
class ModelInfo:
    name: str
    path: Path
    task: str = "seg"
    input_size: tuple[int, int] = (360, 480)  # (height, width)
    classes: tuple[str, ...] = CLASSES
    palette_rgb: list[tuple[int, int, int]] = field(default_factory=lambda: [tuple(c) for c in PALETTE_RGB.tolist()])
    mean: tuple[float, float, float] = tuple(IMAGENET_MEAN.tolist())
    std: tuple[float, float, float] = tuple(IMAGENET_STD.tolist())
    det_classes: tuple[str, ...] = ()  # box classes, for models with a detection head
    entry: dict = field(default_factory=dict)  # the full manifest entry, when there is one


def sha256(path: Path) -> str:
    """The file's sha256 (what manifests record)."""
    from .hash_cache import sha256_of

    return sha256_of(path)


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse a model file that is not the one its manifest entry describes (replaced, truncated, edited).

    Hashing 140 MB of shipped models on every start would cost more than loading one, so a file's digest
    is remembered by (size, mtime) in the cache folder and computed again only when either changes."""
    from .hash_cache import cached_sha256

    actual = cached_sha256(path)
    if actual != expected:
        raise RtsegError(
            f"model file {path} does not match its manifest (sha256 {actual[:12]}... is not "
            f"{str(expected)[:12]}...): it changed after it was shipped or imported; re-import or "
            "re-export it"
        )


def _from_entry(entry: dict, base: Path) -> ModelInfo:
    return ModelInfo(
        name=entry["name"],
        path=base / entry["file"],
        task=entry.get("task", "seg"),
        input_size=tuple(entry["input_size"]),
        classes=tuple(entry.get("classes", CLASSES)),
        palette_rgb=[tuple(c) for c in entry.get("palette_rgb", PALETTE_RGB.tolist())],
        mean=tuple(entry.get("mean", IMAGENET_MEAN.tolist())),
        std=tuple(entry.get("std", IMAGENET_STD.tolist())),
        det_classes=tuple(entry.get("det_classes", ())),
        entry=entry,
    )


def _from_onnx(path: Path) -> ModelInfo:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only reading metadata
    so.log_severity_level = 4
    try:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise RtsegError(f"cannot load model {path}: not a valid ONNX file") from e
    meta = session.get_modelmeta().custom_metadata_map
    if META_KEY in meta:
        entry = json.loads(meta[META_KEY])
        info = _from_entry({**entry, "file": path.name}, path.parent)
        info.name = entry.get("name", path.stem)
        return info
    # A foreign ONNX file: trust its static input shape, assume ImageNet normalisation and CamVid classes.
    shape = session.get_inputs()[0].shape
    h, w = (shape[2], shape[3]) if len(shape) == 4 else (None, None)
    size = (h if isinstance(h, int) else 360, w if isinstance(w, int) else 480)
    return ModelInfo(name=path.stem, path=path, input_size=size)


def resolve_model(name_or_path: str | None, manifest_path: Path = MANIFEST) -> ModelInfo:
    """A manifest name, or a path to an .onnx file; None means the manifest's default."""
    manifest = Manifest.load(manifest_path)
    if name_or_path is None:
        name_or_path = manifest.default
        if not name_or_path:
            raise RtsegError(f"no default model: {manifest_path} lists none; pass --model PATH.onnx")
    entry, folder = manifest.entry(name_or_path), manifest.folder
    # models brought with `rtseg import` (shipped names win, so a damaged user manifest never blocks them)
    user = Manifest.load(user_manifest()) if manifest_path == MANIFEST and entry is None else None
    if entry is None and user is not None:
        entry, folder = user.entry(name_or_path), user.folder
    if entry is not None:
        try:
            info = _from_entry(entry, folder)
        except (KeyError, TypeError, ValueError) as e:
            raise RtsegError(f"manifest entry {entry.get('name', '?')!r} in {folder} is damaged ({e.__class__.__name__}: {e})") from e
        if not info.path.is_file():
            raise RtsegError(f"model file {info.path} listed in the manifest is missing")
        if entry.get("sha256"):
            verify_sha256(info.path, entry["sha256"])
        return info
    path = Path(name_or_path)
    if path.suffix.lower() == ".onnx" or path.exists():
        if not path.exists():
            raise RtsegError(f"no such model file: {path}")
        if path.is_dir():
            raise RtsegError(f"model path {path} is a folder, not an .onnx file")
        return _from_onnx(path)
    names = manifest.names() + (user.names() if user is not None else [])
    close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise RtsegError(
        f"unknown model '{name_or_path}': {hint}`rtseg models` lists the {len(names)} you can name, or pass a path to an .onnx file"
    )


def metrics_key(split: str, size: tuple[int, int] | None, info: ModelInfo) -> str:
    """Manifest key of a measurement: `camvid_val` at the model's own size, `camvid_val@HxW` at another."""
    if size is None or tuple(size) == tuple(info.input_size):
        return f"camvid_{split}"
    return f"camvid_{split}@{size[0]}x{size[1]}"


def variant_name(info: ModelInfo, size: tuple[int, int] | None) -> str:
    """How a model run at `size` is named in profiles, the selector and the JSON lines."""
    if size is None or tuple(size) == tuple(info.input_size):
        return info.name
    return f"{info.name}@{size[0]}x{size[1]}"


def rung_name(info: ModelInfo, size: tuple[int, int] | None, keyframe: int = 1) -> str:
    """The selector's name for a model at `size` run on every `keyframe`-th frame (`.../kf3`), propagated between."""
    return variant_name(info, size) + (f"/kf{keyframe}" if keyframe > 1 else "")


def keyframe_drops(info: ModelInfo, split: str = "val") -> dict[int, float]:
    """Key-frame intervals `rtseg eval --keyframe N --update-manifest` measured for this model at its own size on
    `split` (a labelled sequence), and the mIoU points each lost against every frame on the same frames."""
    out = {}
    for key, m in info.entry.get("metrics", {}).items():
        head = f"camvid_{split}+keyframe"
        if key.startswith(head) and key[len(head) :].isdigit() and m.get("drop") is not None:
            out[int(key[len(head) :])] = float(m["drop"])
    return dict(sorted(out.items()))


def measured_sizes(info: ModelInfo, split: str = "val") -> list[tuple[int, int]]:
    """Input sizes at which the manifest holds a measured accuracy for this model (its own size first)."""
    sizes: list[tuple[int, int]] = []
    for key in info.entry.get("metrics", {}):
        if key == f"camvid_{split}":
            sizes.insert(0, (int(info.input_size[0]), int(info.input_size[1])))
        elif key.startswith(f"camvid_{split}@"):
            h, w = key.split("@")[1].split("x")
            sizes.append((int(h), int(w)))
    return sizes


def cpu_int8_base(info: ModelInfo) -> ModelInfo | None:
    """The FP32 model an INT8 file laid out for ONNX Runtime's CPU kernels was quantized from, or None.

    Such a file (uint8 activations, int32 biases; every shipped `-int8` file, and the default may be one)
    is what the CPU runs fastest, but TensorRT's explicit quantization refuses it and a GPU gains nothing from
    it: GPU backends run its base instead, at their own precision. Entries from before `qdq` was recorded
    are CPU layouts."""
    entry = info.entry or {}
    if entry.get("quantization") and entry.get("qdq", "cpu") == "cpu" and entry.get("base_model"):
        return resolve_model(entry["base_model"])
    return None
