"""Frames kept in the decoder's own YUV 4:2:0 (I420) from decoding to encoding.

A video file decodes to YUV 4:2:0 and an H.264 or MPEG-4 file is written from it; converting to BGR in between costs
the pipeline twice (FFmpeg's conversion after decoding, OpenCV's before encoding) and makes it blend 3 bytes a
pixel instead of 1.5. When every sink of a run takes I420 (`Sink.takes_i420`) and the file allows it
(`I420Reader.open`), frames stay I420: each plane is resized to the model's size and mapped to normalised RGB
in one affine pass a channel (`Preprocessor.from_i420`), and the overlay is blended plane by plane, luma at
frame size and chroma at half size (`Postprocessor.blend_i420`). The writers take the planes as they are.

The layout is OpenCV's and PyAV's: one (H * 3/2, W) uint8 array, the Y plane on top, then U and V, each
(H/2, W/2) stored row after row. Colours are BT.601 limited range, what FFmpeg converts with by default.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


# BT.601 limited range, YUV -> RGB (OpenCV's and FFmpeg's default): rgb = BT601_Y * (Y - 16) + chroma terms,
# R += kvr (V - 128); G += kug (U - 128) + kvg (V - 128); B += kub (U - 128)
BT601_Y = 255.0 / 219.0
BT601_CHROMA = (1.596027, -0.391762, -0.812968, 2.017232)


def planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (H, W), U and V (H/2, W/2) planes of an (H * 3/2, W) I420 array."""
    h, w = i420.shape[0] * 2 // 3, i420.shape[1]
    chroma = i420[h:].reshape(2, h // 2, w // 2)
    return i420[:h], chroma[0], chroma[1]


def frame_size(i420: np.ndarray) -> tuple[int, int]:
    """(width, height) of the picture an I420 array holds."""
    return i420.shape[1], i420.shape[0] * 2 // 3


def to_bgr(i420: np.ndarray) -> np.ndarray:
    """The picture as BGR, for what needs it (boxes drawn by OpenCV, a frame of another size)."""
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


def palette_yuv(lut_bgr: np.ndarray) -> np.ndarray:
    """A (256, 1, 3) BGR lookup table as (3, 256) Y, U, V rows, converted as frames are (BT.601 limited)."""
    blocks = np.repeat(np.repeat(lut_bgr.reshape(1, 256, 3), 2, axis=0), 2, axis=1)  # each colour a 2x2 block
    y, u, v = planes(cv2.cvtColor(np.ascontiguousarray(blocks), cv2.COLOR_BGR2YUV_I420))
    return np.stack([y[0, ::2], u[0], v[0]])


class I420Reader:
    """A video file's frames as I420 arrays, decoded by PyAV (FFmpeg, like OpenCV's reader), in file order."""

    def __init__(self, av, container, frames, first) -> None:
        self._av, self.container, self._frames, self._first = av, container, frames, first
        self.time: float | None = None  # the last frame's time in the stream (s), when the file says it

    @classmethod
    def open(cls, path: Path, first_bgr: np.ndarray, one_thread: bool = True) -> "I420Reader | None":
        """A reader when PyAV is installed and the file's frames are plain YUV 4:2:0 of even size that decode
        to `first_bgr` (OpenCV's first frame: same picture, orientation and colours), else None. `one_thread`:
        decode on one thread (as rtseg's OpenCV reader does up to 720p), else on FFmpeg's frame threads."""
        try:
            import av
        except ImportError:
            return None
        try:
            container = av.open(str(path))
        except (av.FFmpegError, OSError, ValueError):
            return None
        reader = None
        try:
            stream = container.streams.video[0]
            if one_thread:
                stream.codec_context.thread_count = 1
            else:
                stream.codec_context.thread_type = "AUTO"
            frames = container.decode(stream)  # one generator: a second would lose what the decoder holds
            first = next(frames)
            if cls._plain(first) and not getattr(first, "rotation", 0) and (first.width, first.height) == first_bgr.shape[1::-1]:
                pixels = first.to_ndarray()
                # within a few levels of OpenCV's decode (FFmpeg's converter rounds and filters chroma otherwise)
                if float(cv2.absdiff(to_bgr(pixels), first_bgr).mean()) < 4.0:
                    reader = cls(av, container, frames, first)
        except (av.FFmpegError, StopIteration, IndexError, ValueError):
            pass
        finally:
            if reader is None:
                container.close()
        return reader

    @staticmethod
    def _plain(frame) -> bool:
        return frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end (or at the first packet that does not decode, as OpenCV's). A frame
        that changes format or comes at an odd size mid-file is converted to 4:2:0 at the even size below."""
        try:
            frame = self._first if self._first is not None else next(self._frames)
        except StopIteration:
            return None
        except self._av.FFmpegError:  # a truncated or corrupt tail ends the file, as OpenCV's reader does
            return None
        self._first = None
        self.time = frame.time
        if not self._plain(frame):
            frame = frame.reformat(width=frame.width - frame.width % 2, height=frame.height - frame.height % 2, format="yuv420p")
        return frame.to_ndarray()

    def close(self) -> None:
        self.container.close()
