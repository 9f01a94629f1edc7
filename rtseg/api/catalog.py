"""`rtseg.list_models()`: the models you can name, shipped and imported, with what was measured of them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import RtsegError
from ..core.manifest import Manifest
from ..core.paths import user_manifest

log = logging.getLogger("rtseg")


@dataclass(frozen=True)
class ModelCard:
    """One model as the manifest describes it; accuracies are `rtseg eval`'s, None where not measured."""

    name: str
    task: str  # seg, det or segdet
    precision: str
    input_size: tuple[int, int]  # (height, width)
    classes: tuple[str, ...]
    palette_rgb: tuple[tuple[int, int, int], ...]
    det_classes: tuple[str, ...]
    params: int | None
    gflops: float | None
    val_miou: float | None  # CamVid val (drive 0016E5): optimistic, its neighbouring frames train
    heldout_miou: float | None  # a drive left out of the model's training: the honest figure
    heldout_split: str | None
    default: bool
    imported: bool  # brought with `rtseg import` (lives under $RTSEG_HOME)
    entry: dict  # the whole manifest entry (commands, dates, per-class figures)

    @classmethod
    def from_entry(cls, e: dict, default: bool, imported: bool) -> "ModelCard":
        metrics = e.get("metrics", {})
        held = next(
            (
                (k.split("_", 1)[1], v.get("miou"))
                for k, v in metrics.items()
                if k.startswith("camvid_holdout:") and "@" not in k and not v.get("warning")
            ),
            (None, None),
        )  # only a drive it never trained on
        return cls(
            e["name"],
            e.get("task", "seg"),
            e.get("precision", "fp32"),
            tuple(e["input_size"]),
            tuple(e.get("classes") or ()),
            tuple(tuple(c) for c in e.get("palette_rgb") or ()),
            tuple(e.get("det_classes") or ()),
            e.get("params"),
            e.get("gflops"),
            metrics.get("camvid_val", {}).get("miou"),
            held[1],
            held[0],
            default,
            imported,
            e,
        )

    @property
    def origin(self) -> str:
        if self.imported and self.entry.get("imported_from"):
            return f"imported from {Path(self.entry['imported_from']['file']).name}"
        t = self.entry.get("training", {})
        first = (t.get("initialized_from") or {}).get("run") or {}
        if first.get("epochs") and t.get("epochs"):
            # two stages (a start trained here, then refined): both counted, as the recipe ran them
            hours = (first.get("wall_hours") or 0) + (t.get("wall_hours") or 0)
            return f"{first['epochs']} + {t['epochs']} epochs in two stages, {hours:.2f} h on {t.get('trained_on', '?')}"
        return f"{t.get('epochs', '?')} epochs, {t.get('wall_hours', '?')} h on {t.get('trained_on', '?')}"


def list_models() -> list[ModelCard]:
    """Every model `--model NAME` / `Segmenter(NAME)` accepts: the shipped ones, then yours.

    Returns:
        A `ModelCard` per model: name, task, input size, accuracy on the held-out drive (or val), whether it
        is the default or imported.

    Example:
        >>> import rtseg
        >>> cards = rtseg.list_models()
        >>> sum(card.default for card in cards)
        1
        >>> all(card.heldout_miou for card in cards if card.task == "seg" and not card.imported)
        True
    """
    shipped = Manifest.load()
    try:
        user = Manifest.load(user_manifest())
    except RtsegError as e:  # your damaged manifest never hides the shipped models; it is named instead
        log.warning(f"rtseg: {e}; listing the shipped models only")
        user = Manifest(user_manifest())
    names = set()
    cards = []
    for manifest, imported in ((shipped, False), (user, True)):
        for entry in manifest.models:
            if entry["name"] not in names:  # a shipped name wins, as in resolve_model
                names.add(entry["name"])
                cards.append(ModelCard.from_entry(entry, entry["name"] == shipped.default, imported))
    return cards
