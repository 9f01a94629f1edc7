"""Frame -> model input: resize, BGR->RGB, normalise, NCHW float32, into reused buffers."""

from __future__ import annotations

import queue
from typing import Callable

import cv2
import numpy as np

from . import yuv


class BufferPool:
    """A fixed set of preallocated arrays handed out and returned, so no frame allocates its input.

    Frames are in flight in several stages at once, so one buffer is not enough; the pool size bounds
    how many preprocessed inputs can exist, and `acquire` blocks when all are in use.
    """

    def __init__(self, shape: tuple[int, ...], dtype: type, size: int, allocate: Callable | None = None):
        self._free: queue.Queue[np.ndarray] = queue.Queue()
        for _ in range(size):  # `allocate`: e.g. a GPU backend's page-locked memory, uploaded without a copy
            self._free.put((allocate or np.empty)(shape, dtype))

    def acquire(self, timeout: float | None = None) -> np.ndarray:
        return self._free.get(timeout=timeout)

    def release(self, buf: np.ndarray) -> None:
        self._free.put(buf)


class Preprocessor:
    def __init__(
        self,
        input_size: tuple[int, int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        pool_size: int = 8,
        allocate: Callable | None = None,
    ):
        self.height, self.width = input_size
        mean32, std32 = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        # x = (p/255 - mean)/std = p * scale - offset, per RGB channel
        self.scale = 1.0 / (255.0 * std32)
        self.offset = mean32 / std32
        self._resized = np.empty((self.height, self.width, 3), np.uint8)
        self._plane = np.empty((self.height, self.width), np.uint8)
        self._yuv_scratch: np.ndarray | None = None  # Y, U, V at model size (from_i420)
        self._yuv_weights: tuple = ()
        self.pool = BufferPool((1, 3, self.height, self.width), np.float32, pool_size, allocate)

    def __call__(self, frame_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Returns a (1, 3, H, W) float32 RGB-normalised array from the pool (or `out`)."""
        if frame_bgr.shape[:2] == (self.height, self.width):
            resized = frame_bgr
        else:
            resized = cv2.resize(frame_bgr, (self.width, self.height), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        buf = out if out is not None else self.pool.acquire()
        for c in range(3):  # RGB plane c comes from BGR channel 2 - c
            cv2.extractChannel(resized, 2 - c, dst=self._plane)
            # one SIMD pass per plane: p * scale - offset, written as float32 straight into the NCHW buffer
            cv2.addWeighted(self._plane, float(self.scale[c]), self._plane, 0.0, float(-self.offset[c]), dst=buf[0, c], dtype=cv2.CV_32F)
        return buf

    def from_i420(self, i420: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """As `__call__`, for a frame in I420 (runtime/yuv.py): each plane resized to the model's size (chroma
        bilinear from its half resolution), then BT.601 limited-range YUV -> RGB and the normalisation in one
        affine map a channel, written as float32 straight into the NCHW buffer. No RGB image is made, so
        nothing is rounded or clipped to 0-255 on the way."""
        if self._yuv_scratch is None:  # made on first use: most runs never see an I420 frame
            self._yuv_scratch = np.empty((3, self.height, self.width), np.uint8)
            self._yuv_weights = self._i420_weights()
        y, u, v = (
            cv2.resize(p, (self.width, self.height), dst=d, interpolation=cv2.INTER_LINEAR)
            for p, d in zip(yuv.planes(i420), self._yuv_scratch)
        )
        buf = out if out is not None else self.pool.acquire()
        r, g, b = buf[0]
        (yr, vr, kr), (yb, ub, kb), (yg, ug, kg), vg = self._yuv_weights
        cv2.addWeighted(y, yr, v, vr, kr, dst=r, dtype=cv2.CV_32F)
        cv2.addWeighted(y, yb, u, ub, kb, dst=b, dtype=cv2.CV_32F)
        cv2.addWeighted(y, yg, u, ug, kg, dst=g, dtype=cv2.CV_32F)
        cv2.addWeighted(v, vg, g, 1.0, 0.0, dst=g, dtype=cv2.CV_32F)  # G takes V too
        return buf

    def _i420_weights(self) -> tuple:
        """Each channel's affine map, computed once: x_c = rgb_c * scale_c - offset_c with rgb = ky (Y - 16) +
        k (U or V - 128): R from (Y, V), B from (Y, U), G from (Y, U) and then V, as weights and constants."""
        (sr, sg, sb), (orr, og, ob) = (float(v) for v in self.scale), (float(v) for v in self.offset)
        ky, (kvr, kug, kvg, kub) = yuv.BT601_Y, yuv.BT601_CHROMA
        return (
            (ky * sr, kvr * sr, -sr * (16 * ky + 128 * kvr) - orr),
            (ky * sb, kub * sb, -sb * (16 * ky + 128 * kub) - ob),
            (ky * sg, kug * sg, -sg * (16 * ky + 128 * (kug + kvg)) - og),
            kvg * sg,
        )
