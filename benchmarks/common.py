"""What every benchmark prints beside its figures: the command, the machine, the versions, the date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys


def environment() -> dict:
    import cv2
    import numpy
    import onnxruntime

    from rtseg.core.machine import machine_description

    env = {
        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_description(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "numpy": numpy.__version__,
    }
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:
        pass
    return env


VERSIONED = ("python", "onnxruntime", "opencv", "numpy", "torch")


def header_markdown(env: dict) -> str:
    return "\n".join(
        [
            f"- command: `{env['command']}`",
            f"- date: {env['date']}",
            f"- machine: {env['machine']}",
            "- versions: " + ", ".join(f"{k} {env[k]}" for k in VERSIONED if k in env),
        ]
    )


def cpu_ms(fn, items: list) -> float:
    """CPU time of the whole process (all its threads) per item of `fn(item)` over `items`, in ms."""
    import time

    t0 = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - t0) / len(items) * 1e3


def write_report(out, lines: list[str], doc: dict) -> None:
    """NAME.md (the table, for people) and NAME.json (every figure, for programs) at `out`, and the table printed."""
    import json
    from pathlib import Path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    print("\n".join(lines))
