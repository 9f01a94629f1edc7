"""One video's outputs in the batch folder: written under a staging name, committed by rename, done-record last.

A video's files are `KEY.mp4` (the overlay), `KEY.jsonl` and `KEY.masks/` (when asked) and `KEY.done.json`. While
an attempt runs, they are written in `.rtseg-partial/KEY/ATTEMPT/` inside the batch folder (the same file system,
so the renames are atomic); only a finished attempt moves them into place, and writes the done-record after
the last of them. A worker killed at any moment therefore leaves either a staging folder or outputs without a
done-record, and neither is ever taken as finished: the next attempt clears both before it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from ..core.errors import RtsegError

PARTIAL = ".rtseg-partial"  # staging area inside the batch folder; hidden, so a glob of outputs skips it
RECORD_VERSION = 1  # the done-record's layout: a record of another layout never matches


@dataclass(frozen=True)
class VideoOutputs:
    """Where one video's results go in the batch folder `out_dir`, and which of them the batch asked for."""

    out_dir: Path
    key: str  # unique within the batch: names every file of this video
    json_lines: bool = False
    masks: bool = False

    @property
    def overlay(self) -> Path:
        return self.out_dir / f"{self.key}.mp4"

    @property
    def jsonl(self) -> Path:
        return self.out_dir / f"{self.key}.jsonl"

    @property
    def masks_dir(self) -> Path:
        return self.out_dir / f"{self.key}.masks"

    @property
    def record(self) -> Path:
        return self.out_dir / f"{self.key}.done.json"

    def finals(self) -> list[Path]:
        """The files and folders a finished attempt leaves (the done-record aside)."""
        return [self.overlay] + ([self.jsonl] if self.json_lines else []) + ([self.masks_dir] if self.masks else [])

    def every_output(self) -> list[Path]:
        """Whatever a run of this video with any options may have left: a JSON file or masks made with other
        options must not stay beside the outputs of this run, as if they belonged to it."""
        return [self.overlay, self.jsonl, self.masks_dir]

    @property
    def partial_root(self) -> Path:
        return self.out_dir / PARTIAL / self.key


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class Staging:
    """One attempt at a video: a folder of its own for the outputs, moved into place by `commit`."""

    def __init__(self, outputs: VideoOutputs, attempt: int):
        self.outputs = outputs
        # the attempt number says which try this was; the random part keeps two tries that overlap (a worker
        # presumed dead that was only slow) out of each other's files
        self.folder = outputs.partial_root / f"{attempt}-{uuid.uuid4().hex[:8]}"

    @classmethod
    def begin(cls, outputs: VideoOutputs, attempt: int) -> "Staging":
        """Clear what earlier attempts left of this video, then make this attempt's folder."""
        try:
            # the done-record goes first: from here on, nothing of this video passes for finished
            outputs.record.unlink(missing_ok=True)
            for path in outputs.every_output():
                _remove(path)
            _remove(outputs.partial_root)
            staging = cls(outputs, attempt)
            staging.folder.mkdir(parents=True)
        except OSError as e:
            raise RtsegError(f"cannot prepare outputs of {outputs.key} in {outputs.out_dir}: {e.strerror or e}") from e
        return staging

    def staged(self, final: Path) -> Path:
        """Where `final` is written while this attempt runs."""
        return self.folder / final.name

    @property
    def overlay(self) -> Path:
        return self.staged(self.outputs.overlay)

    @property
    def jsonl(self) -> Path | None:
        return self.staged(self.outputs.jsonl) if self.outputs.json_lines else None

    @property
    def masks_dir(self) -> Path | None:
        return self.staged(self.outputs.masks_dir) if self.outputs.masks else None

    def commit(self, record: dict) -> dict:
        """Move every output into place, then write the done-record: the one file that says the video is finished."""
        record = {**record, "record": RECORD_VERSION, "outputs": [p.name for p in self.outputs.finals()]}
        try:
            for final in self.outputs.finals():
                _remove(final)  # a folder cannot be renamed onto another one
                os.replace(self.staged(final), final)
            tmp = self.folder / "done.json.tmp"
            tmp.write_text(json.dumps(record, indent=2) + "\n")
            os.replace(tmp, self.outputs.record)
        except OSError as e:
            raise RtsegError(f"cannot commit outputs of {self.outputs.key} in {self.outputs.out_dir}: {e.strerror or e}") from e
        self.discard()
        return record

    def discard(self) -> None:
        """Remove this attempt's folder (a failed attempt's files, or a committed one's leftovers), and the
        video's staging area once it is empty; never another attempt's folder, which may still be running."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.outputs.partial_root.rmdir()
        except OSError:
            pass  # absent, or another attempt is in it


def read_record(outputs: VideoOutputs) -> dict | None:
    """The video's done-record, or None when there is none (or it cannot be read: then the video is redone)."""
    try:
        record = json.loads(outputs.record.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def record_matches(record: dict | None, outputs: VideoOutputs, identity: dict) -> TypeGuard[dict]:
    """Whether a done-record vouches for this video as the batch asks for it now: the same input (path, size,
    modification time), the same options, and every output it lists still there."""
    if not record or record.get("record") != RECORD_VERSION:
        return False
    if any(record.get(k) != v for k, v in identity.items()):
        return False
    return record.get("outputs") == [p.name for p in outputs.finals()] and all(p.exists() for p in outputs.finals())


def clear_staging(outputs: VideoOutputs) -> None:
    """Every attempt's staging folder of one video: what the driver removes for the videos that were still
    running when a batch was stopped (Ctrl-C), once its workers are gone."""
    shutil.rmtree(outputs.partial_root, ignore_errors=True)


def remove_empty_staging(out_dir: Path) -> None:
    """The staging area itself, once no attempt is left in it (the driver's job: workers never remove it, so
    one worker cannot pull it from under another that is starting)."""
    try:
        (out_dir / PARTIAL).rmdir()
    except OSError:
        pass  # absent, or holding a killed attempt's files: the next run clears those
