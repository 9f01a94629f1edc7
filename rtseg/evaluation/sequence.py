"""Accuracy and steadiness of a model run on a labelled *sequence*, through the pipeline, in frame order.

`rtseg eval --keyframe N` and `--smooth` measure here: CamVid's val split (drive 0016E5) is a 15 Hz sequence
of 101 labelled frames, so propagating between key frames can be scored like any run. With an interval N the
key frames fall on one phase of N; every phase is run (frames p, p+1, ... with key frames at p, p+N, ...) and
the frames of all phases are pooled, so no lucky phase decides the figure. The same frames run with the model
on every frame give the baseline the drop is measured against, in the same call.

Temporal inconsistency (as the video segmentation literature measures it): the share of pixels whose class
differs from the previous frame's map warped to this frame by optical flow, counted only where that flow
explains the picture (warp residual <= RESIDUAL_LEVEL gray levels): pixels of a moving object keep their
class when it moves, so what remains is flicker. The reference flow is DIS "medium" at half the frame
size, independent of the flow key frames use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..runtime.slot import ModelSlot
from ..temporal import Temporal, TemporalSettings
from ..temporal.keyframes import RESIDUAL_LEVEL
from ..temporal.motion import Motion
from .metrics import ConfusionMatrix


@dataclass
class SequenceRun:
    """One run over a sequence: the class map of every frame at frame size, and which frames were inferred."""

    masks: list[np.ndarray]
    inferred: list[bool]
    forced: int = 0
    seconds: float = 0.0


def run_sequence(slot: ModelSlot, frames: list[np.ndarray], settings: TemporalSettings, streams: int = 1) -> SequenceRun:
    """The pipeline over in-memory BGR `frames` with key frames/smoothing as `settings` say (no sinks)."""
    from ..runtime.pipeline import Pipeline
    from ..runtime.sources import ArraySource

    masks: list[np.ndarray] = []
    inferred: list[bool] = []

    def keep(rec) -> None:
        masks.append(rec.mask)
        inferred.append(rec.inferred)

    temporal = Temporal(settings) if settings.active else None
    pipeline = Pipeline(ArraySource(frames), slot, [], streams=streams, on_frame=keep, temporal=temporal)
    stats = pipeline.run(handle_signals=False)
    return SequenceRun(masks, inferred, temporal.forced if temporal else 0, stats.seconds)


def phase_runs(slot: ModelSlot, frames: list[np.ndarray], settings: TemporalSettings, streams: int = 1) -> list[tuple[int, SequenceRun]]:
    """(first frame, run) for every phase of a fixed interval; one run from frame 0 otherwise."""
    interval = settings.keyframes.interval
    phases = range(interval) if isinstance(interval, int) else range(1)
    return [(p, run_sequence(slot, frames[p:], settings, streams)) for p in phases]


@dataclass
class SequenceScore:
    """Pooled over phases: the setting's confusion and the every-frame baseline's on the same frames."""

    confusion: ConfusionMatrix
    baseline: ConfusionMatrix
    frames: int
    inferred: int
    forced: int
    per_distance: dict[int, float] = field(default_factory=dict)  # frames since the key -> pixel accuracy
    from_start: SequenceRun | None = None  # the phase that starts at frame 0: the setting on the whole sequence

    @property
    def miou(self) -> float:
        return self.confusion.miou()

    @property
    def drop(self) -> float:
        """Baseline minus this setting, in mIoU points (positive: the setting lost accuracy)."""
        return (self.baseline.miou() - self.confusion.miou()) * 100


def frame_confusions(masks: list[np.ndarray], labels: list[np.ndarray], classes: int) -> list[ConfusionMatrix]:
    """One confusion matrix per frame (masks resized to the label by nearest pixel where sizes differ)."""
    out = []
    for mask, label in zip(masks, labels):
        if mask.shape != label.shape:
            mask = cv2.resize(mask, label.shape[::-1], interpolation=cv2.INTER_NEAREST)
        cm = ConfusionMatrix(classes)
        cm.update(label, mask)
        out.append(cm)
    return out


def score_sequence(
    slot: ModelSlot,
    frames: list[np.ndarray],
    labels: list[np.ndarray],
    settings: TemporalSettings,
    every_frame: list[ConfusionMatrix] | None = None,
    streams: int = 1,
) -> SequenceScore:
    """The setting's mIoU on a labelled sequence, pooled over its phases, beside the every-frame baseline on
    the same frames (`every_frame`: per-frame confusions already measured, else measured here)."""
    classes = len(slot.info.classes)
    if every_frame is None:
        every_frame = frame_confusions(run_sequence(slot, frames, TemporalSettings(), streams).masks, labels, classes)
    total, base = ConfusionMatrix(classes), ConfusionMatrix(classes)
    n = inferred = forced = 0
    hits: dict[int, list[float]] = {}
    runs = phase_runs(slot, frames, settings, streams)
    for p, run in runs:
        since = 0
        for i, (cm, was_inferred) in enumerate(zip(frame_confusions(run.masks, labels[p:], classes), run.inferred)):
            total.mat += cm.mat
            base.mat += every_frame[p + i].mat
            since = 0 if was_inferred else since + 1
            hits.setdefault(since, []).append(cm.pixel_accuracy())
        n, inferred, forced = n + len(run.masks), inferred + sum(run.inferred), forced + run.forced
    return SequenceScore(total, base, n, inferred, forced, {k: float(np.nanmean(v)) for k, v in sorted(hits.items())}, runs[0][1])


def temporal_inconsistency(frames: list[np.ndarray], masks: list[np.ndarray], scale: float = 0.5) -> float:
    """Mean share of flow-explained pixels whose class changed from the previous frame (see the module
    docstring); frames and masks at frame size, measured at `scale` of it."""
    h, w = frames[0].shape[:2]
    size = (max(16, int(h * scale)), max(16, int(w * scale)))
    motion = Motion(size, "medium")
    shares, prev_gray, prev_mask = [], None, None
    for frame, mask in zip(frames, masks):
        gray = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), size[::-1], interpolation=cv2.INTER_AREA)
        small = cv2.resize(mask, size[::-1], interpolation=cv2.INTER_NEAREST)
        if prev_gray is not None and prev_mask is not None:  # set together, from the second frame on
            maps = motion.maps(gray, prev_gray)
            explained = motion.residual(gray, prev_gray, maps) <= RESIDUAL_LEVEL
            moved = Motion.warp(prev_mask, maps, nearest=True)
            shares.append(float(np.count_nonzero((moved != small) & explained)) / max(1, int(np.count_nonzero(explained))))
        prev_gray, prev_mask = gray, small
    return float(np.mean(shares)) if shares else 0.0


def evaluate_sequence(slot: ModelSlot, data: str, split: str, settings: TemporalSettings, progress: bool = True) -> dict:
    """`rtseg eval --keyframe N` / `--smooth`: the setting against the model on every frame, on a split read as
    a sequence (frames in name order, which is time order within a CamVid drive), as a report like
    `evaluate`'s with `every_frame_miou` and `drop` (points) beside `miou`, and the inconsistency of both."""
    import datetime as dt

    from ..core.errors import RtsegError
    from ..core.machine import machine_description
    from ..data.camvid import eval_pairs, read_label, split_description

    try:
        pairs = sorted(eval_pairs(data, split), key=lambda p: p[0].name)
    except FileNotFoundError as e:
        raise RtsegError(str(e)) from e
    frames = []
    for img, _ in pairs:
        frame = cv2.imread(str(img), cv2.IMREAD_COLOR)
        if frame is None:
            raise RtsegError(f"cannot read image {img}")
        frames.append(frame)
    labels = [read_label(lab) for _, lab in pairs]
    classes = len(slot.info.classes)
    if progress:
        print(
            f"eval {slot.name} on {split} as a sequence ({len(frames)} frames): every frame, then "
            f"keyframe {settings.keyframes.interval}{' + smooth' if settings.smooth else ''}",
            flush=True,
        )
    plain = run_sequence(slot, frames, TemporalSettings())
    every = frame_confusions(plain.masks, labels, classes)
    score = score_sequence(slot, frames, labels, settings, every)
    setting_run = score.from_start  # phase 0 ran every frame of the sequence: no second run for the inconsistency
    if setting_run is None:  # score_sequence always sets it
        raise RtsegError("no run of the setting from the first frame")
    per_class = dict(zip(slot.info.classes, score.confusion.iou().tolist()))
    return {
        "model": slot.name,
        "split": split,
        "split_note": split_description(split),
        "images": len(frames),
        "input_size": list(slot.input_size),
        "backend": slot.backend.name,
        "machine": machine_description(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "keyframe": str(settings.keyframes.interval),
        "smooth": settings.smooth,
        "flow": settings.flow_preset,
        "miou": score.miou,
        "pixel_accuracy": score.confusion.pixel_accuracy(),
        "per_class_iou": per_class,
        "every_frame_miou": score.baseline.miou(),
        "drop": round(score.drop, 3),
        "frames_scored": score.frames,
        "inferred_share": round(score.inferred / score.frames, 4),
        "forced_keyframes": score.forced,
        "inconsistency": round(temporal_inconsistency(frames, setting_run.masks), 5),
        "every_frame_inconsistency": round(temporal_inconsistency(frames, plain.masks), 5),
    }


def format_sequence_report(r: dict) -> str:
    """The lines `rtseg eval --keyframe/--smooth` prints."""
    setting = f"keyframe {r['keyframe']}" + (" + smooth" if r["smooth"] else "") + f" (flow {r['flow']})"
    return "\n".join(
        [
            f"{r['model']} on {r['split']} as a sequence ({r['images']} frames, input {r['input_size'][0]}x"
            f"{r['input_size'][1]}, {r['backend']})",
            f"  split: {r['split_note']}",
            f"  {setting}: mIoU {100 * r['miou']:.2f}, every frame {100 * r['every_frame_miou']:.2f} on the same frames "
            f"(drop {r['drop']:.2f} points; every phase of the interval pooled, {r['frames_scored']} frames scored)",
            f"  model ran on {100 * r['inferred_share']:.0f} % of frames; {r['forced_keyframes']} key frame(s) forced by a cut",
            f"  temporal inconsistency (flow-explained pixels whose class flips): {100 * r['inconsistency']:.2f} %, "
            f"every frame {100 * r['every_frame_inconsistency']:.2f} %",
        ]
    )
