"""rtseg: real-time video segmentation with MobileNetV2 models, ONNX Runtime and TensorRT."""
import os

# FFmpeg and OpenCV print decoder noise (e.g. for truncated files) to stderr; rtseg reports problems itself.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"
