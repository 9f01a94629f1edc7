"""Training augmentation for segmentation, on uint8 HWC numpy arrays with OpenCV.

Image and label go through the same geometry; the label is resized with nearest neighbour and padded
with the void id so padding never counts in the loss.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from .camvid import VOID

CROP_TRIES = 10  # draws of a crop corner before the last one is taken (MMSegmentation's RandomCrop: 10)


class TrainTransform:
    """Random scale, random crop (padded), horizontal flip and colour jitter."""

    def __init__(
        self,
        crop: tuple[int, int],
        scale: tuple[float, float] = (0.5, 2.0),
        base_size: tuple[int, int] | None = None,
        jitter: float = 0.3,
        rng: np.random.Generator | None = None,
        max_class_share: float = 1.0,
    ):
        self.crop_h, self.crop_w = crop
        self.scale = scale
        self.base_size = base_size  # (h, w) the scale range is relative to; None = the image's own size
        self.jitter = jitter
        self.rng = rng or np.random.default_rng()
        # below 1: a crop where one class covers more of the labelled pixels than this is drawn again (up to
        # CROP_TRIES times), so a zoomed-in crop of sky or road alone is rarer (MMSegmentation's cat_max_ratio)
        self.max_class_share = max_class_share

    def __call__(self, img: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.rng
        bh, bw = self.base_size or img.shape[:2]
        s = r.uniform(*self.scale)
        h, w = max(1, round(bh * s)), max(1, round(bw * s))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        ph, pw = max(self.crop_h - h, 0), max(self.crop_w - w, 0)
        if ph or pw:
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=VOID)
        y, x = self._corner(label)
        img = img[y : y + self.crop_h, x : x + self.crop_w]
        label = label[y : y + self.crop_h, x : x + self.crop_w]
        if r.random() < 0.5:
            img, label = img[:, ::-1], label[:, ::-1]
        if self.jitter:
            img = colour_jitter(img, self.jitter, r)
        return np.ascontiguousarray(img), np.ascontiguousarray(label)

    def _corner(self, label: np.ndarray) -> tuple[int, int]:
        """The crop's top-left corner: uniform, or with `max_class_share`, the first of CROP_TRIES draws whose
        crop shows more than one class and none over that share of its labelled pixels (else the last draw)."""
        r = self.rng
        for _ in range(CROP_TRIES if self.max_class_share < 1 else 1):
            y = int(r.integers(0, label.shape[0] - self.crop_h + 1))
            x = int(r.integers(0, label.shape[1] - self.crop_w + 1))
            if self.max_class_share >= 1:
                break
            counts = np.bincount(label[y : y + self.crop_h, x : x + self.crop_w].ravel(), minlength=VOID + 1)[:VOID]
            labelled = counts.sum()
            if np.count_nonzero(counts) > 1 and counts.max() < self.max_class_share * labelled:
                break
        return y, x


def colour_jitter(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation jitter, as torchvision's ColorJitter does, in float32."""
    x = img.astype(np.float32)
    x *= rng.uniform(1 - strength, 1 + strength)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - strength, 1 + strength) + mean  # contrast
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - grey[..., None]) * rng.uniform(1 - strength, 1 + strength) + grey[..., None]
    return np.clip(x, 0, 255).astype(np.uint8)


def to_tensor_layout(img_rgb: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """uint8 HWC RGB -> float32 CHW normalised with the model's statistics (ImageNet's by default)."""
    x = (img_rgb.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1)
