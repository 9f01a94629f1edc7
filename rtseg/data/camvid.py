"""CamVid (SegNet 360x480 layout): class names, colours and split loading."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# the dataset's names for CamVid's classes and colours (RGB, the SegNet tutorial's table), kept in core, whose
# ModelInfo reads a model that names no classes with them
from ..core.constants import CAMVID_CLASSES as CLASSES
from ..core.constants import CAMVID_PALETTE_RGB as PALETTE_RGB  # noqa: F401
from ..core.constants import IMAGE_SUFFIXES

NUM_CLASSES = len(CLASSES)
VOID = 11


def split_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) paths of a CamVid-layout split: `<root>/<split>/` and `<root>/<split>annot/`.

    Images may be PNG or JPEG (the camvid-jpg copy); labels are always PNG class-id maps.
    """
    root = Path(root)
    img_dir, ann_dir = root / split, root / f"{split}annot"
    if not img_dir.is_dir() or not ann_dir.is_dir():
        raise FileNotFoundError(f"{root} has no '{split}/' and '{split}annot/' folders (CamVid layout)")
    pairs = []
    for img in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = ann_dir / (img.stem + ".png")
        if not label.exists():
            raise FileNotFoundError(f"no label {label} for image {img}")
        pairs.append((img, label))
    if not pairs:
        raise FileNotFoundError(f"no images in {img_dir}")
    return pairs


def read_label(path: str | Path) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise ValueError(f"{path} is not a single-channel label map")
    return label


def read_image_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_split(root: str | Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """All RGB images and label maps of a split, in memory (CamVid is small: ~190 MB for train)."""
    pairs = split_pairs(root, split)
    return [read_image_rgb(img) for img, _ in pairs], [read_label(lab) for _, lab in pairs]


def class_frequencies(labels: list[np.ndarray], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Share of labelled (non-void) pixels per class."""
    counts = np.zeros(num_classes, np.int64)
    for lab in labels:
        counts += np.bincount(lab.ravel(), minlength=256)[:num_classes]
    return counts / max(counts.sum(), 1)


def drive_of(path: str | Path) -> str:
    """CamVid frames are named <drive>_<frame> (0001TP_006690.png): the drive is the recording they come from."""
    return Path(path).stem.split("_")[0]


def selection_pairs(root: str | Path, val_split: str) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]], str]:
    """(train pairs, selection pairs, description) for `rtseg train --val-split`.

    `val`: train on train/, select on val/ (CamVid's usual split; val's drive 0016E5 is also in train, so
    its numbers are optimistic). `holdout:DRIVE`: select on every frame of DRIVE in train/ and val/, train on
    all other frames of both: the selection split shares no recording with training.
    """
    if val_split == "val":
        return split_pairs(root, "train"), split_pairs(root, "val"), "val (CamVid val, drive 0016E5)"
    if not val_split.startswith("holdout:") or not val_split.split(":", 1)[1]:
        raise ValueError(f"--val-split must be 'val' or 'holdout:DRIVE' (e.g. holdout:0006R0), got {val_split!r}")
    drive = val_split.split(":", 1)[1]
    everything = split_pairs(root, "train") + split_pairs(root, "val")
    held = [p for p in everything if drive_of(p[0]) == drive]
    if not held:
        drives = sorted({drive_of(p[0]) for p in everything})
        raise ValueError(f"no frames of drive {drive} in {root} (drives: {', '.join(drives)})")
    train = [p for p in everything if drive_of(p[0]) != drive]
    return train, held, f"holdout:{drive} ({len(held)} frames of drive {drive}, none in training)"


def load_pairs(pairs: list[tuple[Path, Path]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB images and label maps of (image, label) path pairs, in memory."""
    return [read_image_rgb(img) for img, _ in pairs], [read_label(lab) for _, lab in pairs]


def eval_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) pairs `rtseg eval --split` measures: a folder split (train, val, test), or
    `holdout:DRIVE`, every frame of one drive found in train/ and val/ (and test/ when present)."""
    if not split.startswith("holdout:"):
        return split_pairs(root, split)
    drive = split.split(":", 1)[1]
    found = []
    for folder in ("train", "val", "test"):
        try:
            found += [p for p in split_pairs(root, folder) if drive_of(p[0]) == drive]
        except FileNotFoundError:
            continue
    if not found:
        raise FileNotFoundError(f"no frames of drive {drive!r} in {root}")
    return found


def split_description(split: str) -> str:
    """What a split is, said beside every number measured on it (README and `rtseg eval`)."""
    if split.startswith("holdout:"):
        drive = split.split(":", 1)[1]
        return f"drive {drive}, held out: drive-disjoint from training for models selected with --val-split {split}"
    if split == "val":
        return "CamVid val, drive 0016E5: optimistic, neighbouring frames of the same drive are in train"
    return f"CamVid {split}"
