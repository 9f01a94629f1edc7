"""Mutated input files for fuzzing the reader path: small real seeds (MJPG and MPEG-4 clips, PNG and JPEG
images), damaged the ways disks, networks and tools damage files, and the contract a run must keep on them.

Used by tests/test_fuzz_files.py (a few cases per CI run) and benchmarks/fuzz_inputs.py (the long run).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np

from helpers import class_frame, count_frames, frame_lines, run_cli, write_clip

MUTATIONS = ("truncate", "flip", "zero_chunk", "duplicate_chunk", "delete_chunk", "header", "insert")


def make_seeds(folder: Path) -> list[Path]:
    """Four small valid inputs: an MJPG .avi, an mp4v .mp4, a .png and a .jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    avi = write_clip(folder / "seed.avi", 12)
    mp4 = folder / "seed.mp4"
    writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    for i in range(12):
        writer.write(class_frame(i % 11))
    writer.release()
    rng = np.random.default_rng(0)
    img = np.clip(class_frame(3).astype(int) + rng.integers(-20, 20, (48, 64, 3)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(folder / "seed.png"), img)
    cv2.imwrite(str(folder / "seed.jpg"), img)
    return [avi, mp4, folder / "seed.png", folder / "seed.jpg"]


def mutate(data: bytes, ops: list[tuple[str, float, float]]) -> bytes:
    """Apply mutations in order; each is (kind, where in 0..1, how much in 0..1)."""
    b = bytearray(data)
    for kind, where, amount in ops:
        if not b:
            break
        at = min(len(b) - 1, int(where * len(b)))
        n = max(1, int(amount * min(4096, len(b) - at)))
        if kind == "truncate":
            del b[max(1, at) :]
        elif kind == "flip":
            r = random.Random(int(where * 1e6))
            for _ in range(max(1, int(amount * 32))):
                i = r.randrange(len(b))
                b[i] ^= 1 << r.randrange(8)
        elif kind == "zero_chunk":
            b[at : at + n] = bytes(len(b[at : at + n]))
        elif kind == "duplicate_chunk":
            b[at:at] = b[at : at + n]
        elif kind == "delete_chunk":
            del b[at : at + n]
        elif kind == "header":
            r = random.Random(int(amount * 1e6))
            for i in range(min(64, len(b))):
                if r.random() < 0.25:
                    b[i] = r.randrange(256)
        elif kind == "insert":
            b[at:at] = random.Random(n).randbytes(n)
    return bytes(b)


def check_run(path: Path, model: Path, work: Path, timeout: float = 60) -> tuple[str, str]:
    """Run `rtseg run` on a (damaged) file; returns (outcome, problem). Outcome: processed, ended-early or
    refused; problem is empty when the contract held: no traceback and no hang; a refusal is one
    `rtseg: error:` line with exit 1; otherwise every frame read has its JSON line and its video frame."""
    work.mkdir(parents=True, exist_ok=True)
    out, js, stats = work / "o.avi", work / "o.jsonl", work / "s.json"
    for f in (out, js, stats):
        f.unlink(missing_ok=True)
    try:
        res = run_cli(
            "run",
            path,
            "--model",
            model,
            "--no-show",
            "--output",
            out,
            "--json",
            js,
            "--stats",
            stats,
            "--codec",
            "mp4v",
            "--quiet",
            timeout=timeout,
        )
    except Exception as e:  # subprocess.TimeoutExpired: a hang
        return "hang", f"{e.__class__.__name__}"
    if "Traceback" in res.stderr:
        return "traceback", res.stderr.strip().splitlines()[-1][:200]
    if res.returncode == 1:
        errors = [line for line in res.stderr.splitlines() if line.startswith("rtseg: error:")]
        return "refused", "" if len(errors) == 1 else f"refusal without one error line: {res.stderr[-200:]!r}"
    if res.returncode not in (0, 3):
        return f"exit {res.returncode}", res.stderr[-200:]
    outcome = "processed" if res.returncode == 0 else "ended-early"
    if not stats.exists():
        return outcome, "no --stats summary"
    s = json.loads(stats.read_text())
    lines = len(frame_lines(js)) if js.exists() else 0
    if not (s["frames_in"] == s["frames_out"] == lines):
        return outcome, f"frames in {s['frames_in']}, out {s['frames_out']}, JSON lines {lines}"
    if s["frames_out"] and count_frames(out) != s["frames_out"]:
        return outcome, f"video holds {count_frames(out)} frames of {s['frames_out']}"
    return outcome, ""
