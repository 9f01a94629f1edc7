"""A model's classes merged onto a dataset's: how a network trained on other classes is measured on ours.

Google's DeepLab MobileNet-EdgeTPU predicts Cityscapes' 19 classes; CamVid labels 11. `rtseg eval
--class-map FILE.json` maps each predicted class id onto a dataset class before the confusion matrix, many to
one ({"wall": "Building", "building": "Building", ...}). The checks are strict because a mistake here does not
fail, it just measures the wrong thing: a model class left unmapped would be scored as void (its pixels
vanish from the metrics), a misspelt name would map nothing. So every model class must be mapped, and every
name must exist on its side; anything else is one RtsegError before a single frame runs.

Shipped mappings are files in rtseg/data/classmaps/, named on the command line without `.json` and with
`-` for `_` (`cityscapes-to-camvid`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import RtsegError

SHIPPED_DIR = Path(__file__).resolve().parent / "classmaps"


@dataclass(frozen=True)
class ClassMap:
    """A mapping as given (a shipped name or a file), before it meets a model and a dataset."""

    source: str  # what --class-map said
    mapping: dict[str, str]  # model class name -> dataset class name


def shipped_class_maps() -> list[str]:
    """Names `--class-map` takes without a path."""
    return sorted(p.stem.replace("_", "-") for p in SHIPPED_DIR.glob("*.json"))


def load_class_map(spec: str) -> ClassMap:
    """A shipped mapping by name (`cityscapes-to-camvid`) or a JSON file {model class: dataset class}."""
    shipped = SHIPPED_DIR / f"{spec.replace('-', '_')}.json"
    path = shipped if "/" not in spec and shipped.is_file() else Path(spec)
    if not path.is_file():
        raise RtsegError(f"--class-map {spec}: no such file, nor a shipped mapping ({', '.join(shipped_class_maps())})")
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise RtsegError(f"--class-map {spec}: cannot read it: {e.strerror}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise RtsegError(f"--class-map {spec}: not valid JSON ({e.__class__.__name__})") from e
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise RtsegError(f"--class-map {spec}: expected a JSON object of model class name -> dataset class name")
    return ClassMap(spec, data)


def class_map_lut(cmap: ClassMap, model_classes: Sequence[str], dataset_classes: Sequence[str]) -> np.ndarray:
    """Lookup table `lut[model class id] = dataset class id` (uint8); refuses a mapping that does not fit.

    Refused, naming the offenders: a model class the model does not have, a dataset class the dataset does
    not have, a model class left unmapped.
    """
    unknown = [k for k in cmap.mapping if k not in model_classes]
    if unknown:
        raise RtsegError(f"--class-map {cmap.source}: {_quoted(unknown)} not among the model's classes ({', '.join(model_classes)})")
    unknown = sorted({v for v in cmap.mapping.values() if v not in dataset_classes})
    if unknown:
        raise RtsegError(f"--class-map {cmap.source}: {_quoted(unknown)} not among the dataset's classes ({', '.join(dataset_classes)})")
    unmapped = [c for c in model_classes if c not in cmap.mapping]
    if unmapped:
        raise RtsegError(
            f"--class-map {cmap.source}: the model's {_quoted(unmapped)} left unmapped "
            f"(map every class; its pixels would otherwise count as void)"
        )
    if len(dataset_classes) > 255:
        raise RtsegError(f"--class-map {cmap.source}: more than 255 dataset classes")
    return np.array([list(dataset_classes).index(cmap.mapping[c]) for c in model_classes], np.uint8)


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names) + (" is" if len(names) == 1 else " are")
