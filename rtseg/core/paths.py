"""Where rtseg finds its models and keeps its caches: the only place these folders are decided."""

from __future__ import annotations

import os
from pathlib import Path


def _shipped_engines() -> Path:
    """Where the shipped models are: inside the package once installed from a wheel (`rtseg/engines`, package
    data), beside it in a checkout or an editable install (`engines/` at the repository's root)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "engines"
    return installed if (installed / "manifest.json").exists() else package.parent / "engines"


# RTSEG_ENGINES_DIR points elsewhere (tests, a folder of your own exports).
ENGINES_DIR = Path(os.environ.get("RTSEG_ENGINES_DIR") or _shipped_engines())
MANIFEST = ENGINES_DIR / "manifest.json"


def cache_dir() -> Path:
    """Speed profiles and TensorRT engines: RTSEG_CACHE_DIR, else $XDG_CACHE_HOME/rtseg (~/.cache/rtseg)."""
    base = os.environ.get("RTSEG_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rtseg"
    return Path(base)


def rtseg_home() -> Path:
    """Your own files (imported models): RTSEG_HOME, else $XDG_DATA_HOME/rtseg (~/.local/share/rtseg)."""
    base = os.environ.get("RTSEG_HOME") or Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "rtseg"
    return Path(base)


def user_manifest() -> Path:
    """The manifest of imported models: outside the package, so upgrades and reinstalls keep them."""
    return rtseg_home() / "models" / "manifest.json"
