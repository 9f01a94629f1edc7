"""`engines/manifest.json`, the list of shipped models: the only code that reads or writes it.

Three commands change it (`rtseg export` for FP32 and INT8 models, `rtseg eval --update-manifest`) and
everything that resolves a model name reads it; going through one type keeps its shape in one place and
every write atomic (a temporary file, then a rename), so an interrupted command never leaves half a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RtsegError
from .names import bad_name_reason
from .paths import MANIFEST


@dataclass
class Manifest:
    """The shipped models (one dict per model, as written by `rtseg export`) and the default model's name.

    `extra` keeps any other top-level keys, so loading and saving never drops what this version does not know.
    """

    path: Path = MANIFEST
    default: str | None = None
    models: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = MANIFEST) -> Manifest:
        """The manifest at `path`; a missing file is an empty manifest, a damaged one (not JSON, not
        UTF-8, not the expected shape, a name or file that is not a plain name) an RtsegError naming it."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except OSError as e:
            raise RtsegError(f"cannot read manifest {path}: {e.strerror}") from e
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RtsegError(f"manifest {path} is damaged: not valid UTF-8 JSON ({e.__class__.__name__})") from e
        models = _checked(data, path)
        extra = {k: v for k, v in data.items() if k not in ("default", "models")}
        return cls(path, data.get("default"), models, extra)

    def save(self) -> None:
        """Write it atomically: a temporary file beside it, then a rename over the old one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"default": self.default, "models": self.models, **self.extra}, indent=2) + "\n")
        tmp.replace(self.path)

    @property
    def folder(self) -> Path:
        """Where the model files it names live: beside it."""
        return self.path.parent

    def names(self) -> list[str]:
        return [m["name"] for m in self.models]

    def entry(self, name: str) -> dict | None:
        """The entry of model `name`, or None when the manifest has no such model."""
        return next((m for m in self.models if m["name"] == name), None)

    def add_or_replace(self, entry: dict) -> None:
        """Add a model's entry last, dropping an earlier entry of the same name."""
        self.models = [m for m in self.models if m["name"] != entry["name"]] + [entry]

    def set_default(self, name: str) -> None:
        if self.entry(name) is None:
            raise RtsegError(f"cannot make {name!r} the default: {self.path} has no such model")
        self.default = name

    def record_metrics(self, name: str, key: str, metrics: dict) -> None:
        """Record one measurement of model `name` under `key` (e.g. `camvid_val`), replacing the old one."""
        entry = self.entry(name)
        if entry is None:
            raise RtsegError(f"no model {name!r} in {self.path}")
        entry.setdefault("metrics", {})[key] = metrics


def _checked(data: object, path: Path) -> list[dict]:
    """The model entries of a loaded manifest, after checking its shape: an object with a `models` list of
    objects, each with a valid `name` and a plain `file` (so no entry reaches outside its folder)."""
    if not isinstance(data, dict) or not isinstance(data.get("models", []), list):
        raise RtsegError(f"manifest {path} is damaged: expected {{\"models\": [...]}}")
    if data.get("default") is not None and not isinstance(data["default"], str):
        raise RtsegError(f"manifest {path} is damaged: 'default' is not a model name")
    models = list(data.get("models", []))
    for k, m in enumerate(models):
        if not isinstance(m, dict):
            raise RtsegError(f"manifest {path} is damaged: model entry {k + 1} is not an object")
        for key in ("name", "file"):
            reason = bad_name_reason(m.get(key))
            if reason:
                raise RtsegError(f"manifest {path} is damaged: entry {k + 1} {key}: {reason}")
    return models
