"""The record that flows through the pipeline: one frame, its results and its per-stage timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import yuv
from .postprocess import Detection, class_map

if TYPE_CHECKING:  # only for the annotation: the slot module loads backends
    from .slot import ModelSlot

STAGES = ("capture", "preprocess", "infer", "postprocess", "sink")


@dataclass
class FrameRecord:
    index: int  # position in the stream, counting dropped frames too
    image: np.ndarray | None  # BGR frame as captured; None when it came as I420 (`i420`)
    source_time: float | None  # seconds: stream time for files, wall clock for live sources, None for images
    label: str  # name for per-frame files, unique in the run (frame number or image name)
    t_captured: float  # perf_counter() when the frame was read
    seq: int = -1  # position among the frames that reach inference (set by preprocess)
    ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds spent on this frame
    input: np.ndarray | None = None  # preprocessed model input (a pooled buffer)
    outputs: dict[str, np.ndarray] | None = None  # the model's raw outputs (model-input pixels)
    _mask: np.ndarray | None = field(default=None, repr=False)  # class ids at frame size: `mask`
    shares: np.ndarray | None = None  # share of pixels per class
    detections: list[Detection] = field(default_factory=list)
    overlay: np.ndarray | None = None
    # frames of a run kept in YUV 4:2:0 (runtime/yuv.py; only when every sink takes it): the frame and overlay
    # as (H * 3/2, W) I420 arrays; a frame with boxes gets its overlay in BGR (`overlay`) all the same
    i420: np.ndarray | None = None
    overlay_i420: np.ndarray | None = None
    model: str = ""  # name of the model that processed the frame
    slot: ModelSlot | None = None  # the slot that preprocessed it (and so must infer it)
    event: dict | None = None  # e.g. the selector's model switch that took effect at this frame
    file: str | None = None  # the image file the frame was read from (image sources)
    inferred: bool = True  # False: the model did not run; its outputs were carried here by motion
    temporal: object | None = field(default=None, repr=False)  # key-frame plan (rtseg/temporal), when on

    @property
    def mask(self) -> np.ndarray | None:
        """Class ids at frame size. Frames in I420 make it on first use from the model's map (0.13 ms at 768x576
        here): a run that writes only a video and JSON lines never needs it."""
        if self._mask is None and self.i420 is not None and self.outputs is not None and self.slot is not None:
            small = class_map(self.outputs)
            if small is not None:
                self._mask = self.slot.post.resize_mask(small, yuv.frame_size(self.i420))
        return self._mask

    @mask.setter
    def mask(self, value: np.ndarray | None) -> None:
        self._mask = value
