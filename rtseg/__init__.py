"""rtseg: real-time video segmentation with MobileNetV2 models, ONNX Runtime and TensorRT.

The Python API (loaded on first use, so `rtseg` on the command line starts fast):

    import cv2, rtseg

    seg = rtseg.Segmenter()                          # the default shipped model; or a name, a path, target_fps=
    res = seg(cv2.imread("street.jpg"))              # Result: .mask, .classes, .class_share, .boxes, .overlay()

    for res in rtseg.stream("video.mp4", target_fps=30, output="overlay.mp4"):
        print(res.index, res.class_share["Road"])

    for label, res in rtseg.stream_many(["rtsp://cam/1", "rtsp://cam/2"], target_fps=15):
        print(label, res.index)                      # several sources, one model, every one at 15 FPS

    rtseg.list_models()                              # the models you can name, with their measured accuracy
"""

import os

# FFmpeg and OpenCV print decoder noise (e.g. for truncated files) to stderr; rtseg reports problems itself.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"

_API = {
    "Segmenter": ("rtseg.api.segmenter", "Segmenter"),
    "stream": ("rtseg.api.segmenter", "stream"),
    "stream_many": ("rtseg.api.stream_many", "stream_many"),
    "Result": ("rtseg.api.result", "Result"),
    "ResultStream": ("rtseg.api.streaming", "ResultStream"),
    "list_models": ("rtseg.api.catalog", "list_models"),
    "RtsegError": ("rtseg.core.errors", "RtsegError"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from importlib import import_module

        module, attr = _API[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rtseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
