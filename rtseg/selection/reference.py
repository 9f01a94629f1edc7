"""Reference speeds: how fast each shipped model variant ran model-only on the machine the models were built on.

`engines/speeds.json` is written by `benchmarks/reference_speeds.py` from a full `rtseg profile` of that
machine (its command, machine, layout and date are in the file). The selector's first use on a new machine
times one model here and scales every other variant's reference speed by the same ratio: one probe, not
one per variant, so the first frame comes in about a second instead of five. The ratio carries a machine's
overall speed, not the ways it differs (a CPU without VNNI runs INT8 relatively slower), so a scaled figure is
only a start: the selector probes the model it chose before trusting it, and runs and `rtseg profile` replace it.

Entries carry the model file's sha256: a model replaced since the reference was measured has none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import ENGINES_DIR

REFERENCE_FILE = "speeds.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceSpeeds:
    """Model-only FPS per variant name (`NAME` or `NAME@HxW`) on the reference machine, with each file's sha256."""

    machine: str
    layout: str  # streams x threads the reference ran with
    date: str
    model_fps: dict[str, tuple[str, float]]  # variant -> (sha256 of the model file, FPS)

    def fps(self, variant: str, sha256: str) -> float | None:
        """The reference FPS of `variant`, if it was measured on this very file."""
        entry = self.model_fps.get(variant)
        return entry[1] if entry and entry[0] == sha256 and entry[1] > 0 else None

    def to_dict(self) -> dict:
        return {
            "machine": self.machine,
            "layout": self.layout,
            "date": self.date,
            "model_fps": {k: {"sha256": s, "fps": f} for k, (s, f) in sorted(self.model_fps.items())},
        }


def load_reference(folder: Path | None = None) -> ReferenceSpeeds | None:
    """The shipped reference speeds, or None where there are none (or they cannot be read: only a start-up aid).

    >>> load_reference(Path("/nonexistent")) is None
    True
    """
    path = (folder or ENGINES_DIR) / REFERENCE_FILE
    try:
        doc = json.loads(path.read_text())
        speeds = {k: (str(v["sha256"]), float(v["fps"])) for k, v in doc["model_fps"].items()}
        return ReferenceSpeeds(str(doc.get("machine", "")), str(doc.get("layout", "")), str(doc.get("date", "")), speeds)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.debug(f"rtseg: {path}: unreadable reference speeds ({e}); estimating every variant here")
        return None
