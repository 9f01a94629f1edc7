"""sha256 of model files, remembered by (size, mtime) so checking every load stays cheap.

The cache is a small JSON file in rtseg's cache folder, written atomically; a missing or damaged cache
only means hashing again. A file whose size or modification time changed is always hashed again, so an
edited model cannot hide behind an old digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .paths import cache_dir


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_sha256(path: Path) -> str:
    """`sha256_of(path)`, from the cache when the file's size and mtime are those it was hashed at."""
    st = path.stat()
    key, stamp = str(path.resolve()), [st.st_size, st.st_mtime_ns]
    cache_file = cache_dir() / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    hit = cache.get(key)
    if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = sha256_of(path)
    cache[key] = {"stamp": stamp, "sha256": digest}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".sha256-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cache, f)
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only cache folder: correct, only slower
    return digest
