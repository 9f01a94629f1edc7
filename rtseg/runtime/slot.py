"""A model ready to run: its metadata, backend, preprocessor and postprocessor, loaded together.

`ModelSlot.process(frame)` is the one synchronous path from a BGR frame to its results (preprocess,
infer, postprocess); evaluation, profiling, benchmarks, calibration and the Python API all call it, and
the threaded pipeline calls the same three steps (`preprocess`, `infer`, `postprocess`) from its stages.

The pipeline holds one current slot; every frame records the slot it was preprocessed with and finishes
with it. Switching models (the selector) is loading a new slot beside the running one, then making it
current: frames in flight are never fed to a model of another input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.constants import DEFAULT_ALPHA, DEFAULT_SCORE_THRESHOLD
from ..backends import Backend, load_backend, model_for
from ..backends.choice import resolve_backend
from ..core.errors import RtsegError
from ..core.modelinfo import ModelInfo, variant_name
from . import yuv
from .postprocess import Detection, Postprocessor, class_map
from .preprocess import Preprocessor


@dataclass
class Prediction:
    """What a model says about one frame, in frame pixels."""

    mask: np.ndarray | None  # (H, W) uint8 class ids at frame size; None for a box-only model
    shares: np.ndarray | None  # share of the frame's pixels per class
    detections: list[Detection] = field(default_factory=list)  # boxes above the slot's score threshold
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # the model's raw outputs (model-input pixels)
    overlay: np.ndarray | None = None  # the frame with the mask and boxes drawn, when asked for
    overlay_i420: np.ndarray | None = None  # the same in I420, when the frame came as I420 (runtime/yuv.py)


@dataclass
class ModelSlot:
    info: ModelInfo
    backend: Backend
    pre: Preprocessor
    post: Postprocessor

    @property
    def name(self) -> str:
        return variant_name(self.info, (self.pre.height, self.pre.width))

    @property
    def input_size(self) -> tuple[int, int]:
        return self.pre.height, self.pre.width

    # -- the three steps -------------------------------------------------------------------------
    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The model input for a frame, in a buffer from the slot's pool: `infer` gives it back."""
        return self.pre(frame_bgr)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the backend on a pooled input and return the buffer to the pool, whatever happens."""
        try:
            return self.backend.infer(x)
        finally:
            self.pre.pool.release(x)

    def _results(self, outputs: dict[str, np.ndarray], frame_size: tuple[int, int]):
        """The model-size class map (None for a box-only model), its class shares (counted at model size: same
        shares, fewer pixels) and the boxes in frame pixels."""
        small = class_map(outputs)
        shares = None if small is None else self.post.class_shares(small)
        return small, shares, self.post.detections(outputs, self.input_size, frame_size)

    def _full_mask(self, small: np.ndarray | None, frame_size: tuple[int, int]) -> np.ndarray | None:
        return None if small is None else self.post.resize_mask(small, frame_size)

    def postprocess(self, frame_bgr: np.ndarray, outputs: dict[str, np.ndarray], draw: bool = True) -> Prediction:
        """Class map at frame size, class shares, boxes in frame pixels and, with `draw`, the overlay."""
        frame_size = (frame_bgr.shape[1], frame_bgr.shape[0])
        small, shares, detections = self._results(outputs, frame_size)
        mask = self._full_mask(small, frame_size)
        overlay = self.post.overlay(frame_bgr, mask, detections, small) if draw else None
        return Prediction(mask, shares, detections, outputs, overlay)

    def preprocess_i420(self, i420: np.ndarray) -> np.ndarray:
        """`preprocess` for a frame in I420 (runtime/yuv.py)."""
        return self.pre.from_i420(i420)

    def postprocess_i420(self, i420: np.ndarray, outputs: dict[str, np.ndarray], full_mask: bool = True) -> Prediction:
        """`postprocess` with the overlay, for a frame in I420: the overlay blended in I420 (`overlay_i420`), or,
        for frames with boxes or a legend (drawn by OpenCV in BGR), made in BGR (`overlay`). Without `full_mask`
        the class map at frame size is left out (`mask` None) where the overlay does not need it."""
        frame_size = yuv.frame_size(i420)
        small, shares, detections = self._results(outputs, frame_size)
        if small is None or detections or self.post.legend:
            mask = self._full_mask(small, frame_size)
            overlay = self.post.overlay(yuv.to_bgr(i420), mask, detections, small)
            return Prediction(mask, shares, detections, outputs, overlay)
        mask = self._full_mask(small, frame_size) if full_mask else None
        return Prediction(mask, shares, detections, outputs, overlay_i420=self.post.blend_i420(i420, small))

    def process(self, frame_bgr: np.ndarray, draw: bool = False) -> Prediction:
        """One frame, start to end, in the calling thread."""
        return self.postprocess(frame_bgr, self.infer(self.preprocess(frame_bgr)), draw)

    def warm_up(self, runs: int = 2) -> None:
        """First inferences allocate and plan; do them before the slot meets real frames."""
        x = np.zeros((1, 3, self.pre.height, self.pre.width), np.float32)
        for _ in range(runs):
            self.backend.infer(x)

    def close(self) -> None:
        self.backend.close()

    @classmethod
    def for_backend(
        cls,
        info: ModelInfo,
        backend: Backend,
        input_size: tuple[int, int] | None = None,
        alpha: float = DEFAULT_ALPHA,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        pool_size: int = 8,
        legend: bool = False,
    ) -> "ModelSlot":
        """A slot for a backend that is already loaded (a TensorRT engine of one profile, a model in training)."""
        # a backend that offers host buffers (TensorRT's page-locked memory) gets its inputs written straight there
        pre = Preprocessor(
            input_size or info.input_size, info.mean, info.std, pool_size=pool_size, allocate=getattr(backend, "host_buffer", None)
        )
        return cls(info, backend, pre, Postprocessor(info.palette_rgb, info.classes, alpha, info.det_classes, score_threshold, legend))


def load_slot(
    info: ModelInfo,
    backend: str = "onnxruntime",
    threads: int | None = None,
    input_size: tuple[int, int] | None = None,
    alpha: float = DEFAULT_ALPHA,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    pool_size: int = 8,
    legend: bool = False,
    **backend_options,
) -> ModelSlot:
    info = model_for(resolve_backend(backend)[0], info, backend_options.get("precision"))  # what really runs
    size = input_size or info.input_size
    # TensorRT: its profile from input_size; ONNX Runtime: a session planned for this one shape (fixed_size)
    loaded = load_backend(backend, info, threads=threads, input_size=input_size, fixed_size=tuple(size), **backend_options)
    static = loaded.static_size()
    if static and tuple(static) != tuple(size):
        loaded.close()
        raise RtsegError(
            f"model {info.name} only accepts {static[0]}x{static[1]} inputs, not {size[0]}x{size[1]}"
            + (" (--input-size)" if input_size else "")
        )
    # one inference now (it warms the backend up too): a model that gives neither a class map nor boxes
    # (a classifier, say) would otherwise run to the end writing no masks and no warning
    outputs = loaded.infer(np.zeros((1, 3, *size), np.float32))
    if class_map(outputs) is None and "boxes" not in outputs:
        loaded.close()
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items())
        raise RtsegError(
            f"model {info.name} is not a segmentation or box model: its outputs ({shapes}) hold no "
            "class map (N, C, H, W) or 'mask' (N, H, W), and no boxes"
        )
    return ModelSlot.for_backend(info, loaded, size, alpha, score_threshold, pool_size, legend)
