"""A file that lists sources: `rtseg run cams.toml`, `rtseg serve --streams streams.txt`.

Text, one source per line; blank lines and lines starting with # are skipped; `LABEL = URI` names the
source (its output files, its page under /LABEL/), a bare URI is named after itself:

    # the loading bay
    bay = rtsp://10.0.0.5/stream1
    http://10.0.0.6:8080/video.mjpg
    recordings/monday.mp4

TOML (a .toml file), an array of tables, `label` optional:

    [[source]]
    uri = "rtsp://10.0.0.5/stream1"
    label = "bay"

File paths are read relative to the list's own folder (as a playlist's are), URIs and camera:// as given.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import RtsegError
from .sources import CAMERA_URI, STREAM_SCHEMES

LIST_SUFFIXES = (".toml", ".txt")
LABEL = re.compile(r"[A-Za-z0-9._-]+")
NAMED_LINE = re.compile(r"([A-Za-z0-9._-]+)\s+=\s+(\S.*)")


@dataclass(frozen=True)
class NamedSource:
    uri: str
    label: str | None = None  # None: named after the URI (`group.source_labels`)


def is_source_list(text: str) -> bool:
    return Path(text).suffix.lower() in LIST_SUFFIXES


def _resolve(uri: str, folder: Path) -> str:
    if uri.startswith(STREAM_SCHEMES) or CAMERA_URI.fullmatch(uri) or "://" in uri or Path(uri).is_absolute():
        return uri
    return os.path.abspath(folder / uri)  # absolute: a Ray worker does not share the command's working folder


RESERVED = {".", "..", "stats.json", "index.html"}  # a page's own paths, or no path at all, under /<label>/


def _checked(label, where: str) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str) or not LABEL.fullmatch(label) or label in RESERVED:
        raise RtsegError(
            f"{where}: label {label!r} must be text of letters, digits, '.', '_' and '-' (it names "
            f"files and URLs), and not {', '.join(sorted(RESERVED))}"
        )
    return label


def read_source_list(path: str | Path) -> list[NamedSource]:
    """The sources a .txt or .toml list names, in order; a one-line error for a list that cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RtsegError(f"source list {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RtsegError(f"source list {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    folder = path.parent
    out: list[NamedSource] = []
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RtsegError(f"source list {path}: not valid TOML ({e})") from None
        tables = doc.get("source")
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise RtsegError(f"source list {path}: wants [[source]] tables, each with uri = \"...\"")
        for n, t in enumerate(tables, 1):
            uri, label = t.get("uri"), t.get("label")
            if not isinstance(uri, str) or not uri.strip():
                raise RtsegError(f"source list {path}: [[source]] number {n} has no uri = \"...\"")
            unknown = set(t) - {"uri", "label"}
            if unknown:
                raise RtsegError(f"source list {path}: [[source]] number {n}: unknown key(s) {', '.join(sorted(unknown))}")
            out.append(NamedSource(_resolve(uri.strip(), folder), _checked(label, f"source list {path}")))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = NAMED_LINE.fullmatch(line)
            label, uri = (m.group(1), m.group(2).strip()) if m else (None, line)
            out.append(NamedSource(_resolve(uri, folder), _checked(label, f"source list {path} line {n}")))
    if not out:
        raise RtsegError(f"source list {path} names no source")
    labels = [s.label for s in out if s.label]
    if len(labels) != len(set(labels)):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise RtsegError(f"source list {path}: label(s) {', '.join(twice)} given to more than one source")
    return out


def expand_sources(args: list[str]) -> list[NamedSource]:
    """SOURCE arguments with every source list in them replaced by the sources it names."""
    out: list[NamedSource] = []
    for arg in args:
        out.extend(read_source_list(arg) if is_source_list(arg) else [NamedSource(arg)])
    return out
