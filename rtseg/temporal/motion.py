"""Dense motion between two frames at model resolution (OpenCV's DIS optical flow) and warping by it.

Flow is computed *backwards*, from the current frame to the reference one, so every pixel of the current
frame knows where to sample the reference: `warp(reference_output, maps)` is the reference output moved to
where things are now, with no holes (backward warping never leaves a pixel unset).
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

# DIS presets by name. On the 2-core CPU at 288x384 (vtest.avi): ultrafast 1.0 ms, fast 1.8 ms, medium 5.7 ms a
# pair; what each costs in accuracy is measured by benchmarks/keyframes.py.
PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def small_gray(frame_bgr: np.ndarray | None, i420: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """The frame as 8-bit luma at `size` (H, W): what the flow is computed on. An I420 frame's Y plane is
    already luma, so nothing is converted."""
    h, w = size
    if i420 is not None:
        luma = i420[: i420.shape[0] * 2 // 3]  # the Y plane: the first two thirds of an (H * 3/2, W) I420 array
    else:
        luma = cv2.cvtColor(cast(np.ndarray, frame_bgr), cv2.COLOR_BGR2GRAY)  # no I420 frame: callers give the BGR one
    if luma.shape == (h, w):
        return np.ascontiguousarray(luma)
    return cv2.resize(luma, (w, h), interpolation=cv2.INTER_AREA)


class Motion:
    """Flow, warps and warp error for one model resolution; used from one thread (DIS keeps state)."""

    def __init__(self, size: tuple[int, int], preset: str = "ultrafast"):
        if preset not in PRESETS:
            raise ValueError(f"flow preset must be one of {', '.join(PRESETS)}, not {preset!r}")
        self.size, self.preset = size, preset
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])  # type: ignore[attr-defined]  # not in OpenCV's stubs
        h, w = size
        self._gx, self._gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def maps(self, current: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel of `current` comes from in `reference`: (map_x, map_y) for cv2.remap."""
        flow = self._dis.calc(current, reference, None)
        return self._gx + flow[..., 0], self._gy + flow[..., 1]

    def flow(self, maps: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The displacement (dx, dy) the maps hold."""
        return maps[0] - self._gx, maps[1] - self._gy

    @staticmethod
    def warp(reference: np.ndarray, maps: tuple[np.ndarray, np.ndarray], nearest: bool) -> np.ndarray:
        """`reference` (H, W) or (H, W, C) moved by `maps`; class ids take the nearest pixel (ids do not
        interpolate), scores and images are interpolated. Maps of another size are scaled to it."""
        mx, my = maps
        h, w = reference.shape[:2]
        if (h, w) != mx.shape:
            sy, sx = h / mx.shape[0], w / mx.shape[1]
            mx = cv2.resize(mx, (w, h)) * sx + (sx - 1) / 2  # pixel centres: x_out = (x_in + 0.5) * s - 0.5
            my = cv2.resize(my, (w, h)) * sy + (sy - 1) / 2
        return cv2.remap(reference, mx, my, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def residual(self, current: np.ndarray, reference: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Per-pixel |current - reference warped to it| in gray levels: large where the flow does not explain
        the change (occlusion, a new object, a cut)."""
        return cv2.absdiff(current, self.warp(reference, maps, nearest=False))
