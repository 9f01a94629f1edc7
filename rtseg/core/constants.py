"""Constants more than one floor needs: input normalisation and the file kinds rtseg reads and writes."""
from __future__ import annotations

import numpy as np

# torchvision's ImageNet statistics: rtseg's from-scratch models normalise their input with these
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

# what OpenCV reads as a still image (sources, calibration folders, CamVid) and can write (sinks)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# video files a folder given to `rtseg batch` contributes
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"})
