"""Where built TensorRT engines live, and when one may be reused.

An engine is only valid for the exact ONNX file, GPU (model and compute capability), TensorRT version,
precision, shape profile and builder settings (`BuildSettings`) it was built for, so all of these make up its
key (computed in one place, `tensorrt.engine_key`; the build reads its settings from the key). Each key has one file:
a magic line, a one-line JSON header (the key, the engine's size and checksum) and the engine bytes. A
header that does not match the key, or bytes that do not match the checksum (disk corruption, a file
copied in by hand), means "build again", never "use it anyway". Engines are a per-machine cache, never
shipped.

Several processes may want the same engine at once (two `rtseg run`s started together, the selector's
profiling beside an export). Files are written under a unique temporary name in the same folder and
`os.replace`d, so a reader sees a whole old file or a whole new one, never half of one; and
"look in the cache -> build -> store" runs under a per-key lock (`flock` on `<engine>.lock`), so the
second process waits and then finds the first one's engine instead of building it again, and nobody
deletes an engine another process has just stored. TensorRT's timing cache (kernel timings, which make
rebuilds fast) is one file per TensorRT version and GPU (its name and compute capability), merged and replaced
the same way.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, cast

from ..core.errors import RtsegError

try:
    import fcntl
except ImportError:  # Windows: no flock; one process at a time is then the user's business
    fcntl = None  # type: ignore[assignment]  # mypy types the name as the module, which Windows lacks

Shape = tuple[int, int]  # (H, W); batch is 1 and channels 3 in every profile
MAGIC = b"RTSEG-ENGINE/1\n"
STALE_TMP_S = 3600  # a temporary file this old was left by a writer that died (a write takes seconds)
log = logging.getLogger(__name__)


def as_shape(size: Iterable[int]) -> Shape:
    """`size` as the tuple a profile holds (sizes also come as lists, from JSON and the command line)."""
    return cast(Shape, tuple(size))


@dataclass(frozen=True)
class ShapeProfile:
    min: Shape
    opt: Shape
    max: Shape

    @classmethod
    def fixed(cls, size: Shape) -> "ShapeProfile":
        return cls(as_shape(size), as_shape(size), as_shape(size))

    @classmethod
    def parse(cls, min_shape: Shape | None, opt_shape: Shape | None, max_shape: Shape | None, default: Shape) -> "ShapeProfile":
        """--min/--opt/--max-shape; missing ones collapse onto the given ones or the model's own size."""
        opt = as_shape(opt_shape or min_shape or max_shape or default)
        profile = cls(as_shape(min_shape or opt), opt, as_shape(max_shape or opt))
        if not all(lo <= mid <= hi for lo, mid, hi in zip(profile.min, profile.opt, profile.max)):
            raise RtsegError(
                f"shape profile must satisfy min <= opt <= max in height and width, got "
                f"min {profile.min}, opt {profile.opt}, max {profile.max}"
            )
        return profile

    @classmethod
    def covering(cls, sizes: list[Shape], opt: Shape) -> "ShapeProfile":
        """The smallest profile holding every size (per dimension), tuned for `opt`."""
        sizes = [as_shape(s) for s in [*sizes, opt]]
        return cls(as_shape(map(min, zip(*sizes))), as_shape(opt), as_shape(map(max, zip(*sizes))))

    def contains(self, size: Shape) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, size, self.max))

    def label(self) -> str:
        fmt = "{}x{}".format
        return fmt(*self.opt) if self.min == self.opt == self.max else f"{fmt(*self.min)}-{fmt(*self.max)}"


@dataclass(frozen=True)
class BuildSettings:
    """How the builder is set up besides precision and shapes: each of these changes the engine it makes."""

    strongly_typed: bool = True  # each layer in the type the ONNX file gives it (TensorRT 11 knows no other way)
    optimization_level: int = 3  # IBuilderConfig.builder_optimization_level, 0-5 (3 is TensorRT's default)
    workspace_bytes: int = 4 << 30  # the WORKSPACE memory pool: larger lets the builder pick hungrier tactics


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str  # of the ONNX bytes TensorRT parses (the FP32 model, its FP16 conversion, the Q/DQ file)
    gpu: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"
    tensorrt: str  # TensorRT version
    precision: str  # fp32 | fp16 | int8
    profile: ShapeProfile
    settings: BuildSettings = BuildSettings()

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
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None, "no cached engine"
        except OSError as e:
            return None, f"cached engine {path.name} cannot be read ({e.strerror or e})"
        header, data = _split(blob)
        if header is None:
            return None, f"cached engine {path.name} has no readable record"
        if header.get("key") != json.loads(json.dumps(asdict(key))):
            return None, f"cached engine {path.name} was built for something else"
        if len(data) != header.get("bytes") or hashlib.sha256(data).hexdigest() != header.get("sha256"):
            return None, f"cached engine {path.name} is corrupt (checksum mismatch)"
        return data, ""

    def store(self, key: EngineKey, model_name: str, data: bytes, extra: dict | None = None) -> Path:
        """Header and engine in one file, replaced atomically: a reader sees a whole engine or none."""
        header = {"key": asdict(key), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **(extra or {})}
        path = self.path(key, model_name)
        self._write(path, MAGIC + json.dumps(header).encode() + b"\n" + data)
        return path

    def discard(self, key: EngineKey, model_name: str) -> None:
        """Remove an engine on purpose (e.g. INT8 refused by the accuracy gate), under its lock."""
        with self.locked(key, model_name):
            self.path(key, model_name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self, key: EngineKey, model_name: str) -> Iterator[None]:
        """Hold the key's lock: other threads and processes wanting the same engine wait here."""
        with _file_lock(self._lock_path(self.path(key, model_name))):
            yield

    def get_or_build(
        self,
        key: EngineKey,
        model_name: str,
        build: Callable[[], bytes],
        accept: Callable[[bytes], bool] = lambda data: True,
        extra: dict | None = None,
    ) -> tuple[bytes, bool]:
        """(engine bytes, whether this call built them): the cached engine if there is one that `accept`s,
        else `build()` stored under the key, built once however many threads and processes ask together.

        `accept` lets the caller refuse bytes that pass the checksum but do not load (a TensorRT that
        cannot deserialize them); they are then rebuilt and replaced, never deleted.
        """
        data, why = self.load(key, model_name)
        if data is not None and accept(data):
            return data, False
        with self.locked(key, model_name):
            fresh, why = self.load(key, model_name)  # someone may have stored it while we waited
            if fresh is not None and fresh != data and accept(fresh):
                return fresh, False
            if fresh is not None:
                why = f"cached engine {self.path(key, model_name).name} does not load in this TensorRT"
            if why != "no cached engine":
                log.warning(f"rtseg: {why}; rebuilding")
            data = build()
            self.store(key, model_name, data, extra)
            return data, True

    # -- TensorRT's timing cache -----------------------------------------------------------------
    def timing_path(self, tensorrt_version: str, gpu: str, compute_capability: str) -> Path:
        """One timing cache per TensorRT version and GPU, by name as well as architecture: kernel timings of
        one GPU say nothing about another, and two models of one compute capability (an L4 and an RTX 4090,
        both 8.9) time kernels differently; TensorRT warns that combining caches from devices with different
        properties "may lead to functional/performance bugs" (ITimingCache::combine)."""
        slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")[:40] or "gpu"
        exact = hashlib.sha256(gpu.encode()).hexdigest()[:8]  # names that make the same slug stay apart
        sm = compute_capability.replace(".", "")
        return self.folder / f"timing-trt{tensorrt_version}-sm{sm}-{slug}-{exact}.cache"

    def read_timing(self, tensorrt_version: str, gpu: str, compute_capability: str) -> bytes:
        try:
            return self.timing_path(tensorrt_version, gpu, compute_capability).read_bytes()
        except OSError:
            return b""

    def update_timing(self, tensorrt_version: str, gpu: str, compute_capability: str, merge: Callable[[bytes], bytes]) -> None:
        """Replace the timing cache with `merge(what is on disk now)`, under its lock, atomically: timings
        another process added since we read the file are merged in, not overwritten."""
        path = self.timing_path(tensorrt_version, gpu, compute_capability)
        with _file_lock(self._lock_path(path)):
            self._write(path, merge(self.read_timing(tensorrt_version, gpu, compute_capability)))

    # -- files -----------------------------------------------------------------------------------
    def _lock_path(self, path: Path) -> Path:
        return path.with_name(path.name + ".lock")

    def _write(self, path: Path, blob: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _remove_stale_temporaries(path)
            _atomic_write(path, blob)
        except OSError as e:
            raise RtsegError(f"cannot write the engine cache {self.folder}: {e.strerror or e}") from e


def _split(blob: bytes) -> tuple[dict | None, bytes]:
    """(header, engine bytes) of a cache file; (None, b"") when it is not one."""
    if not blob.startswith(MAGIC):
        return None, b""
    line, newline, data = blob[len(MAGIC) :].partition(b"\n")
    try:
        header = json.loads(line) if newline else None
    except ValueError:
        header = None
    return (header, data) if isinstance(header, dict) else (None, b"")


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive flock: separate opens conflict, so it orders threads of one process too. The lock file
    stays behind (deleting it while someone waits on it would let a third process in)."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+b")
    except OSError as e:
        raise RtsegError(f"cannot lock the engine cache {lock_path.parent}: {e.strerror or e}") from e
    with handle:
        locked = fcntl is not None
        if locked:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as e:  # a filesystem without locks (NFS mounted `nolock`, some FUSE): go on unlocked
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise RtsegError(f"cannot lock the engine cache {lock_path.parent}: {e.strerror or e}") from e
                log.warning(
                    f"rtseg: the engine cache {lock_path.parent} cannot be locked ({e.strerror}); "
                    "processes starting together may build the same engine twice"
                )
                locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _umask() -> int:
    try:  # Linux says it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of `path` that a killed writer left behind (never one being written)."""
    now = time.time()
    for tmp in path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write beside the target under a unique name, then rename over it (atomic on one filesystem). The
    file gets the permissions an ordinary write would (mkstemp makes it 0600: other users sharing the
    cache folder could not read the engine)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
