"""The record that flows through the pipeline: one frame, its results and its per-stage timings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .postprocess import Detection

if TYPE_CHECKING:  # only for the annotation: the slot module loads backends
    from .slot import ModelSlot

STAGES = ("capture", "preprocess", "infer", "postprocess", "sink")


@dataclass
class FrameRecord:
    index: int                        # position in the stream, counting dropped frames too
    image: np.ndarray                 # BGR frame as captured
    source_time: float | None         # seconds: stream time for files, wall clock for live sources, None for images
    label: str                        # name for per-frame files, unique in the run (frame number or image name)
    t_captured: float                 # perf_counter() when the frame was read
    seq: int = -1                     # position among the frames that reach inference (set by preprocess)
    ms: dict[str, float] = field(default_factory=dict)   # stage -> milliseconds spent on this frame
    input: np.ndarray | None = None   # preprocessed model input (a pooled buffer)
    outputs: dict[str, np.ndarray] | None = None  # the model's raw outputs (model-input pixels)
    mask: np.ndarray | None = None    # class ids at frame size
    shares: np.ndarray | None = None  # share of pixels per class
    detections: list[Detection] = field(default_factory=list)
    overlay: np.ndarray | None = None
    model: str = ""                   # name of the model that processed the frame
    slot: ModelSlot | None = None     # the slot that preprocessed it (and so must infer it)
    event: dict | None = None         # e.g. the selector's model switch that took effect at this frame
    file: str | None = None           # the image file the frame was read from (image sources)
