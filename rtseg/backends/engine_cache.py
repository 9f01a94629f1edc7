"""Where built TensorRT engines live, and when one may be reused.

An engine is only valid for the exact ONNX file, GPU (model and compute capability), TensorRT version,
precision and shape profile it was built for, so all of these make up its key. Each engine file has a
JSON sidecar holding the key and the engine's checksum: a sidecar that does not match, or an engine
whose bytes do not match its checksum (interrupted write, disk corruption), means "build again", never
"use it anyway". Engines are a per-machine cache, never shipped.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import RtsegError

Shape = tuple[int, int]  # (H, W); batch is 1 and channels 3 in every profile


@dataclass(frozen=True)
class ShapeProfile:
    min: Shape
    opt: Shape
    max: Shape

    @classmethod
    def fixed(cls, size: Shape) -> "ShapeProfile":
        return cls(tuple(size), tuple(size), tuple(size))

    @classmethod
    def parse(cls, min_shape: Shape | None, opt_shape: Shape | None, max_shape: Shape | None,
              default: Shape) -> "ShapeProfile":
        """--min/--opt/--max-shape; missing ones collapse onto the given ones or the model's own size."""
        opt = tuple(opt_shape or min_shape or max_shape or default)
        profile = cls(tuple(min_shape or opt), opt, tuple(max_shape or opt))
        if not all(lo <= mid <= hi for lo, mid, hi in zip(profile.min, profile.opt, profile.max)):
            raise RtsegError(f"shape profile must satisfy min <= opt <= max in height and width, got "
                             f"min {profile.min}, opt {profile.opt}, max {profile.max}")
        return profile

    def contains(self, size: Shape) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, size, self.max))

    def label(self) -> str:
        fmt = "{}x{}".format
        return fmt(*self.opt) if self.min == self.opt == self.max else f"{fmt(*self.min)}-{fmt(*self.max)}"


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    gpu: str                  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str   # e.g. "9.0"
    tensorrt: str             # TensorRT version
    precision: str            # fp32 | fp16 | int8
    profile: ShapeProfile

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def filename(self, model_name: str) -> str:
        return f"{model_name}-{self.precision}-{self.profile.label()}-{self.digest()}.engine"


def engine_cache_dir() -> Path:
    """RTSEG_ENGINE_CACHE, else <rtseg cache>/engines (RTSEG_CACHE_DIR or ~/.cache/rtseg)."""
    if os.environ.get("RTSEG_ENGINE_CACHE"):
        return Path(os.environ["RTSEG_ENGINE_CACHE"])
    from ..core.paths import cache_dir

    return cache_dir() / "engines"


class EngineCache:
    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder else engine_cache_dir()

    def path(self, key: EngineKey, model_name: str) -> Path:
        return self.folder / key.filename(model_name)

    def load(self, key: EngineKey, model_name: str) -> tuple[bytes | None, str]:
        """(engine bytes, "") when a valid engine is cached, else (None, why it cannot be used)."""
        path = self.path(key, model_name)
        sidecar = path.with_suffix(".json")
        if not path.exists():
            return None, "no cached engine"
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return None, f"cached engine {path.name} has no readable record"
        if record.get("key") != json.loads(json.dumps(asdict(key))):
            return None, f"cached engine {path.name} was built for something else"
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            return None, f"cached engine {path.name} is corrupt (checksum mismatch)"
        return data, ""

    def store(self, key: EngineKey, model_name: str, data: bytes, extra: dict | None = None) -> Path:
        """Write engine then record, each atomically: a reader sees a whole pair or a mismatch, never half a file."""
        path = self.path(key, model_name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, data)
            record = {"key": asdict(key), "sha256": hashlib.sha256(data).hexdigest(), **(extra or {})}
            _atomic_write(path.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
        except OSError as e:
            raise RtsegError(f"cannot write the engine cache {self.folder}: {e.strerror or e}") from e
        return path

    def discard(self, key: EngineKey, model_name: str) -> None:
        path = self.path(key, model_name)
        for p in (path, path.with_suffix(".json")):
            p.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
