"""`rtseg export`: a trained checkpoint -> ONNX file (argmax inside, dynamic H/W) + manifest entry.

The ONNX graph takes `image` (N, 3, H, W) float32, normalised RGB, and returns `mask` (N, H, W) uint8
class ids: the argmax runs inside the graph, so only one byte per pixel leaves the runtime. rtseg's
metadata (classes, palette, input size, normalisation, architecture) is embedded in the file, so a
bare .onnx works with `--model PATH`. The PyTorch weights are saved beside it for the PyTorch paths.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.camvid import CLASSES, PALETTE_RGB
from ..core.errors import RtsegError
from ..core.manifest import Manifest
from ..core.modelinfo import META_KEY, sha256
from ..models import ModelSpec, build_model
from ..models.deploy import ExportWrapper, count_gflops, count_params, output_names

OPSET = 17

REPEATED_FLAGS = {"distill"}  # train options given once per value (argparse action="append")


def load_checkpoint(path: str | Path) -> tuple[nn.Module, ModelSpec, dict]:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise RtsegError(f"cannot read checkpoint {path}: {e.__class__.__name__}") from e
    if not isinstance(ck, dict) or "spec" not in ck or "model" not in ck:
        raise RtsegError(f"{path} is not an rtseg checkpoint (needs 'model' and 'spec')")
    spec = ModelSpec.from_dict(ck["spec"])
    model = build_model(spec)
    model.load_state_dict(ck["model"])
    return model.eval(), spec, ck


def model_metadata(spec: ModelSpec) -> dict:
    """What rtseg needs to run a model, embedded in the ONNX file and copied into the manifest."""
    from ..data.boxes import DET_CLASSES

    meta = {
        "task": spec.task,
        "input_size": list(spec.input_size),
        "classes": list(CLASSES[: spec.num_classes]),
        "palette_rgb": PALETTE_RGB[: spec.num_classes].tolist(),
        "mean": list(spec.mean),
        "std": list(spec.std),
        "architecture": spec.to_dict(),
    }
    if spec.has_det:
        meta["det_classes"] = list(DET_CLASSES[: spec.num_det_classes])
    return meta


def export_onnx(model: nn.Module, spec: ModelSpec, output: Path, opset: int = OPSET) -> dict:
    meta = {"name": output.stem, **model_metadata(spec)}
    output.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, *spec.input_size)
    names = output_names(spec.task)
    axes = {
        "image": {0: "batch", 2: "height", 3: "width"},
        "mask": {0: "batch", 1: "height", 2: "width"},
        "boxes": {0: "batch"},
        "scores": {0: "batch"},
        "labels": {0: "batch"},
    }
    axes = {k: v for k, v in axes.items() if k == "image" or k in names}
    # The TorchScript exporter: explicit dynamic axes, 5x faster than the dynamo one here and the same
    # graph speed in ONNX Runtime; torch is pinned (setup.py), so its deprecation notice is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            ExportWrapper(model, spec.task).eval(),
            (dummy,),
            str(output),
            opset_version=opset,
            dynamo=False,
            input_names=["image"],
            output_names=names,
            dynamic_axes=axes,
        )
    import onnx

    proto = onnx.load(str(output))
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
    proto.producer_name = "rtseg"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(output))
    return meta


def _number(text: str | None) -> float:
    """A log cell as a number; an empty or damaged cell (a run killed mid-write) counts as 0."""
    if text is None:  # no such cell: a log without that column, or a row cut short
        return 0.0
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def training_record(ck: dict, checkpoint: Path) -> dict:
    """Where and how long the model trained, from the checkpoint and the run's log.csv."""
    args = ck.get("args", {})
    log = Path(checkpoint).parent / "log.csv"
    record = {
        "trained_on": ck.get("trained_on", args.get("device") or "cpu"),
        "epochs": ck.get("epoch"),
        "selected_epoch": ck.get("epoch"),
        "wall_hours": None,
    }
    if log.exists():
        rows = list(csv.DictReader(open(log)))
        record["epochs"] = len(rows)
        record["wall_hours"] = round(sum(_number(r.get("epoch_seconds")) for r in rows) / 3600, 2)
        if rows and all(r.get("cpu_seconds") for r in rows):  # older logs did not count CPU time
            record["cpu_hours"] = round(sum(_number(r.get("cpu_seconds")) for r in rows) / 3600, 2)
    skip = {"out", "resume", "func", "command", "max_steps", "pretrained_sha256"}
    parts = ["rtseg train"]
    for k, v in args.items():
        if k in skip or v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if k in REPEATED_FLAGS:  # given once per value (--distill A.pt --distill B.pt)
            parts += [f"{flag} {x}" for x in v]
            continue
        parts.append(flag if v is True else f"{flag} {' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}")
    record["command"] = " ".join(parts)
    # what selected the epoch: CamVid val (its drive is in train) or a drive held out of training
    record["val_split"] = ck.get("val_split", args.get("val_split", "val"))
    record["train_val_metrics"] = ck.get("val_metrics", {"miou": ck["val_miou"]} if "val_miou" in ck else None)
    return record


def _run_start(weights: str) -> dict:
    """For a start that is another run's checkpoint (not shipped): where that run started and how long it
    trained, so a chain of fine-tunes still names its pretrained origin and counts all of its time."""
    path = Path(weights)
    if path.suffix != ".pt" or not path.is_file():
        return {}
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return {}
    if not isinstance(ck, dict) or "args" not in ck:
        return {}
    rec = training_record(ck, path)
    return {
        "run": {
            "started_from": ck["args"].get("pretrained"),
            "epochs": rec.get("epochs"),
            "selected_epoch": rec.get("selected_epoch"),
            "wall_hours": rec.get("wall_hours"),
            "val_split": rec.get("val_split"),
            "command": rec.get("command"),
        }
    }


def _record_parent(training: dict, args: dict, manifest: Manifest) -> None:
    """A model fine-tuned from shipped weights: name the parent and count its (and its ancestors') training
    time in the total. The parent is the manifest entry whose weights file it started from, checked by the
    checksum recorded at training time when there is one."""
    pretrained = args.get("pretrained")
    if not pretrained or pretrained == "imagenet":
        return
    start = {"weights": pretrained, **({"sha256": args["pretrained_sha256"]} if args.get("pretrained_sha256") else {})}
    parent = next((m for m in manifest.models if m.get("weights") == Path(pretrained).name), None)
    if parent is not None and start.get("sha256"):
        shipped = manifest.folder / parent["weights"]
        if not shipped.exists() or sha256(shipped) != start["sha256"]:
            parent = None  # that name now holds other weights: do not credit them
    if parent is None:
        training["initialized_from"] = start | _run_start(pretrained)
        earlier = training["initialized_from"].get("run", {}).get("wall_hours")
        if training.get("wall_hours") is not None and earlier is not None:
            training["total_wall_hours"] = round(training["wall_hours"] + earlier, 2)
        return
    ptrain = parent.get("training", {})
    parent_total = ptrain.get("total_wall_hours", ptrain.get("wall_hours"))
    training["initialized_from"] = {
        "model": parent["name"],
        **start,
        "epochs": ptrain.get("epochs"),
        "wall_hours": ptrain.get("wall_hours"),
        "total_wall_hours": parent_total,
        "trained_on": ptrain.get("trained_on"),
    }
    if training.get("wall_hours") is not None and parent_total is not None:
        training["total_wall_hours"] = round(training["wall_hours"] + parent_total, 2)


@dataclass(frozen=True)
class ExportRequest:
    """`rtseg export --checkpoint`: which checkpoint, where the files go, and how the manifest records it."""

    checkpoint: Path
    out_dir: Path
    name: str | None = None  # default: the architecture's name
    manifest_path: Path | None = None  # None: write the files only
    set_default: bool = False  # make it the default (the first model always is)
    trained_on: str | None = None  # overrides the machine recorded in the checkpoint
    note: str | None = None  # a remark kept with the training record


def export_checkpoint(request: ExportRequest) -> dict:
    """Write `<name>.onnx` and `<name>.pt` into `request.out_dir`; returns the model's manifest entry, also
    added to (or replaced in) the manifest when the request names one."""
    checkpoint = Path(request.checkpoint)
    model, spec, ck = load_checkpoint(checkpoint)
    name = request.name or spec.name
    out_dir = Path(request.out_dir)
    onnx_path = out_dir / f"{name}.onnx"
    export_onnx(model, spec, onnx_path)
    weights_path = out_dir / f"{name}.pt"
    torch.save({"model": model.state_dict(), "spec": spec.to_dict()}, weights_path)
    training = training_record(ck, checkpoint)
    if request.trained_on:
        training["trained_on"] = request.trained_on
    if request.note:
        training["note"] = request.note
    entry = {
        "name": name,
        "file": onnx_path.name,
        "weights": weights_path.name,
        **model_metadata(spec),
        "params": count_params(model),
        "gflops": round(count_gflops(model, spec.input_size), 3),
        "sha256": sha256(onnx_path),
        "training": training,
        "metrics": {},
    }
    if request.manifest_path is not None:
        manifest = Manifest.load(request.manifest_path)
        _record_parent(training, ck.get("args", {}), manifest)
        manifest.add_or_replace(entry)
        if request.set_default or not manifest.default:
            manifest.set_default(name)
        manifest.save()
    return entry
