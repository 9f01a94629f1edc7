"""Constants more than one floor needs: input normalisation, CamVid's labels and the file kinds rtseg reads and
writes."""

from __future__ import annotations

import numpy as np

# torchvision's ImageNet statistics: rtseg's from-scratch models normalise their input with these
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

# CamVid's 11 classes and their colours (the SegNet tutorial's RGB table): the label set rtseg's models are
# trained on, and the one a model that names no classes of its own is read with (`ModelInfo`'s default);
# data/camvid.py gives them to the dataset as CLASSES and PALETTE_RGB
CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist")
CAMVID_PALETTE_RGB = np.array(
    [
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ],
    dtype=np.uint8,
)

# what OpenCV reads as a still image (sources, calibration folders, CamVid) and can write (sinks)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# video files a folder given to `rtseg batch` contributes
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"})

# x264's presets, from the least CPU a frame to the smallest file (rtseg encodes at crf 23)
H264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
# ultrafast: writing the default model's 768x576 overlay costs 2.6 ms of CPU a frame against superfast's 4.6
# (OpenCV's mp4v writer: 2.0), for 1.5x the bit rate at crf 23 and 1.3 dB more PSNR (benchmarks/results/
# encoder_cost_cpu.md); `rtseg run --codec h264 --backend null` 261 -> 383 FPS (pipeline_ab3_cpu.md). A
# real-time pipeline on a few cores is short of CPU, not of disk; long recordings can ask for a slower preset.
DEFAULT_H264_PRESET = "ultrafast"

# How results are drawn, the one place their defaults are written: the overlay's opacity, the score under which a
# box is not drawn (every API, CLI option and settings type takes these)
DEFAULT_ALPHA = 0.5
DEFAULT_SCORE_THRESHOLD = 0.3
