"""Argument types of `rtseg`'s options: each checks its value and says what is wrong in the words the parser
prints (`rtseg: error: argument --x: ...`, exit 2)."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def whole_number(text: str, low: int, what: str = "a whole number") -> int:
    """An integer of at least `low` (and not absurdly large), or argparse's one-line complaint."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
    if v > 1_000_000_000:
        raise argparse.ArgumentTypeError(f"is absurdly large: {text}")
    return v


def count(text: str) -> int:
    """A positive whole number (frames, loops, streams, threads, queue slots): 0 or less never makes sense."""
    return whole_number(text, 1)


def reconnect_attempts(text: str) -> int | None:
    """--reconnect: attempts in a row (0: none), or 'forever' (None)."""
    return None if text == "forever" else whole_number(text, 0, "a number of attempts or 'forever'")


def keyframe_interval(text: str):
    """--keyframe: every Nth frame (N >= 1), or 'auto'."""
    from ..temporal import KeyFrames

    try:
        return KeyFrames.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of frames >= 1 or 'auto', got {text!r}") from None


def alpha(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def split_name(text: str) -> str:
    if text in ("train", "val", "test") or (text.startswith("holdout:") and len(text) > len("holdout:")):
        return text
    raise argparse.ArgumentTypeError(f"must be train, val, test or holdout:DRIVE, got {text!r}")


def size_hw(text: str) -> tuple[int, int]:
    from ..models import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def path_arg(text: str) -> str:
    """An output path: an empty one (an unset shell variable, `--output "$OUT"`) would silently write nothing."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a path, got an empty one")
    return text
