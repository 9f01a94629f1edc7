"""`rtseg eval`: a model on a labelled split (or as a sequence with key frames), the report, and the manifest
entry it may update."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import RtsegError
from .run import backend_choice

if TYPE_CHECKING:
    from ..runtime.settings import BackendChoice
    from ..temporal import KeyFrames

log = logging.getLogger(__name__)


# -- rtseg eval --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRequest:
    """`rtseg eval`: which model, on which data and split, and where the report goes."""

    model: str | None
    data: str
    backend: "BackendChoice"
    split: str = "val"
    task: str | None = None
    threads: int | None = None
    input_size: tuple[int, int] | None = None
    json_path: str | None = None
    update_manifest: bool = False
    quiet: bool = False
    stress: bool = False  # photometrically stressed copies of the split
    class_map: str | None = None  # model classes -> dataset classes (a shipped name or a JSON file)
    keyframe: KeyFrames | None = None  # run the split as a sequence with key frames
    smooth: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvalRequest:
        return cls(
            args.model,
            args.data,
            backend_choice(args),
            args.split,
            args.task,
            args.threads,
            args.input_size,
            args.json,
            args.update_manifest,
            args.quiet,
            args.stress,
            args.class_map,
            args.keyframe,
            args.smooth,
        )

    @property
    def temporal(self) -> bool:
        """Whether the split runs as a sequence (key frames or smoothing) rather than as separate images."""
        return self.smooth or (self.keyframe is not None and not self.keyframe.every_frame)

    def metrics_suffix(self) -> str:
        """What a setting adds to the manifest's metrics key: `+stress`, `+keyframe3`, `+smooth`."""
        if self.stress:
            return "+stress"
        if not self.temporal:
            return ""
        return ("" if self.keyframe is None or self.keyframe.every_frame else f"+keyframe{self.keyframe.interval}") + (
            "+smooth" if self.smooth else ""
        )

    def command(self, key: str) -> str:
        """The `rtseg eval` line that measures this again, as recorded beside the numbers."""
        return (
            f"rtseg eval --model {self.model} --data {self.data} --split {self.split}"
            + (" --stress" if self.stress else "")
            + (f" --task {self.task}" if self.task else "")
            + (f" --keyframe {self.keyframe.interval}" if self.keyframe is not None and not self.keyframe.every_frame else "")
            + (" --smooth" if self.smooth else "")
            + (f" --class-map {self.class_map}" if self.class_map else "")
            + (f" --input-size {self.input_size[0]}x{self.input_size[1]}" if "@" in key and self.input_size else "")
        )


def cmd_eval(args: argparse.Namespace) -> int:
    """`rtseg eval`: a model's accuracy on a split, printed, and kept in a JSON file or the manifest on request."""
    from ..evaluation.evaluate import evaluate, format_report
    from ..core.modelinfo import resolve_model
    from ..runtime.slot import load_slot

    request = EvalRequest.from_args(args)
    if request.backend.name == "null":
        raise RtsegError("--backend null runs no model: it measures the pipeline, not accuracy")
    class_map = None
    if request.class_map:
        from ..data.classmap import load_class_map

        class_map = load_class_map(request.class_map)
    info = resolve_model(request.model)
    if request.temporal and (
        request.stress or class_map is not None or (request.task or info.task) not in ("seg", "segdet") or (request.task or "seg") != "seg"
    ):
        raise RtsegError(
            "--keyframe and --smooth measure segmentation on a sequence: not with --stress, --class-map, "
            f"--task det or a box-only model ({info.name} is {info.task})"
        )
    slot = load_slot(info, request.backend.name, request.threads, request.input_size, **request.backend.options())
    if request.backend.why:
        log.info(f"rtseg: backend auto: {request.backend.why}")
    if request.temporal:
        return eval_sequence(request, info, slot)
    report = evaluate(
        slot, request.data, request.split, request.task, progress=not request.quiet, stress=request.stress, class_map=class_map
    )
    slot.close()
    # what selected the model's epoch, when its record says (a bare .onnx file carries no training record)
    trained_with = info.entry.get("training", {}).get("val_split", "val" if info.entry.get("training") else None)
    if trained_with is None:
        pass
    elif request.split.startswith("holdout:") and trained_with != request.split:
        # this drive was in the model's training data: the number is not a held-out measurement
        report["warning"] = (
            f"{info.name} was trained with --val-split {trained_with}: drive {request.split.split(':', 1)[1]} was in its training data"
        )
    elif request.split == "val" and trained_with.startswith("holdout:"):
        # a held-out run trains on every other frame, val's included
        report["warning"] = f"{info.name} was trained with --val-split {trained_with}: val's frames were in its training data"
    return keep_report(request, info, report, format_report(report))


def keep_report(request: EvalRequest, info, report: dict, text: str) -> int:
    """Print an eval report, and write it to --json and the manifest when asked."""
    report["command"] = "rtseg " + " ".join(sys.argv[1:] if argv_is_rtseg() else [])
    print(text)
    if request.json_path:
        Path(request.json_path).write_text(json.dumps(report, indent=2) + "\n")
    if request.update_manifest:
        record_eval(request, info, report)
    return 0


def eval_sequence(request: EvalRequest, info, slot) -> int:
    """`rtseg eval --keyframe N / --smooth`: the split as a sequence, against every frame (evaluation/sequence.py)."""
    from ..api.segmenter import temporal_settings
    from ..evaluation.sequence import evaluate_sequence, format_sequence_report

    try:
        report = evaluate_sequence(
            slot, request.data, request.split, temporal_settings(request.keyframe, request.smooth), progress=not request.quiet
        )
    finally:
        slot.close()
    return keep_report(request, info, report, format_sequence_report(report))


def record_eval(request: EvalRequest, info, report: dict) -> None:
    """`--update-manifest`: keep the measurement in the model's manifest entry."""
    from ..core.manifest import Manifest
    from ..core.modelinfo import metrics_key

    manifest = Manifest.load()
    if request.model is None or manifest.entry(request.model) is None:
        raise RtsegError(f"--update-manifest needs a model name from {manifest.path}, got {request.model!r}")
    keep = (
        "miou",
        "pixel_accuracy",
        "per_class_iou",
        "detection",
        "images",
        "input_size",
        "backend",
        "machine",
        "date",
        "split_note",
        "warning",
        "class_map",
        "keyframe",
        "smooth",
        "flow",
        "every_frame_miou",
        "drop",
        "inferred_share",
        "inconsistency",
        "every_frame_inconsistency",
    )
    key = metrics_key(request.split + request.metrics_suffix(), request.input_size, info)
    manifest.record_metrics(request.model, key, {k: report[k] for k in keep if k in report} | {"command": request.command(key)})
    manifest.save()
    print(f"updated {manifest.path}: {request.model} {key}")


def argv_is_rtseg() -> bool:
    """Whether this process is the `rtseg` command (so its argv is worth recording)."""
    return Path(sys.argv[0]).name in ("rtseg", "__main__.py")


def recorded_command(default: str | None = None) -> str | None:
    """The command line as the user typed it (`rtseg ...`), or `default` when rtseg was called otherwise."""
    return "rtseg " + " ".join(sys.argv[1:]) if argv_is_rtseg() else default
