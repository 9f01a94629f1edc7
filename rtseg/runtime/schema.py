"""The per-frame JSON record: one definition for `--json` lines and the Python API's `Result.to_dict()`.

The contract is `rtseg/schemas/frame.schema.json` (JSON Schema, draft 2020-12), checked by a test against
what this function writes. Boxes are `[x1, y1, x2, y2]` in frame pixels, origin top-left, x to the right,
y down, floats; `class` is the box class's name. `class_share` maps each class name to the share of the
frame's pixels labelled with it (void and unknown ids count in no class).
"""

from __future__ import annotations

import math
import time as _time
from pathlib import Path
from typing import Sequence

import numpy as np

from .postprocess import Detection

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "frame.schema.json"
SCHEMA_VERSION = 2  # 2: a header line first; frames carry source, size and inferred


def header_record(model: str, class_names: Sequence[str], palette_rgb, det_classes: Sequence[str], source: str | None) -> dict:
    """The first line of a JSON-lines file: what the frame lines that follow mean. A reader skips it with
    `if "header" in line`; its own schema is the `header` property of frame.schema.json."""
    from .. import __version__

    return {
        "header": {
            "rtseg": __version__,
            "schema_version": SCHEMA_VERSION,
            "model": model,
            "classes": list(class_names),
            "palette_rgb": [list(map(int, c)) for c in (palette_rgb or [])][: len(class_names)],
            "box_classes": list(det_classes),
            "source": source,
        }
    }


def frame_record(
    index: int,
    source_time: float | None,
    model: str,
    ms: dict[str, float],
    class_names: Sequence[str],
    shares: np.ndarray | None,
    det_classes: Sequence[str],
    detections: Sequence[Detection],
    source_file: str | None = None,
    event: dict | None = None,
    wall_time: float | None = None,
    inferred: bool = True,
    source: str | None = None,
    size: tuple[int, int] | None = None,
) -> dict:
    """One frame's results as plain JSON values (see the module docstring for units)."""
    line: dict[str, object] = {
        "frame": index,
        # stream time for files, capture wall clock for live sources, null for still images (they have none)
        "time": None if source_time is None or not math.isfinite(source_time) else round(source_time, 4),
        "wall_time": round(_time.time() if wall_time is None else wall_time, 4),  # when the result was written
        "model": model,
        "inferred": inferred,  # False: the model did not run on this frame; its result was carried by motion
        "ms": {k: round(v, 3) for k, v in ms.items()},
    }
    if source is not None:
        line["source"] = source  # what was read (credentials removed): lines from many runs stay apart
    if size is not None:
        line["size"] = [int(size[0]), int(size[1])]  # [width, height] of the frame: boxes are in its pixels
    if source_file is not None:
        line["source_file"] = source_file
    if shares is not None:
        line["class_share"] = {n: round(float(s), 5) for n, s in zip(class_names, shares)}
    if event:
        line.update(event)
    if det_classes:
        line["boxes"] = [
            {
                "box": [round(v, 1) for v in d.box],
                "score": round(d.score, 4),
                "class": det_classes[d.class_id] if d.class_id < len(det_classes) else str(d.class_id),
            }
            for d in detections
        ]
    return line
