"""What a batch will do, decided in one place before any work: the videos, their output names, the model, and
which videos a done-record already vouches for.

Everything a worker needs travels in a `VideoJob` and a `WorkerSpec`, with absolute paths: a Ray worker's
working directory is not the driver's, and may be on another machine (which then sees the inputs and the
batch folder at the same paths, on a shared file system).
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2

from ..core.constants import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..core.errors import RtsegError
from ..runtime.sources import looks_like_glob, unique_labels
from .commit import PARTIAL, VideoOutputs, read_record, record_matches

log = logging.getLogger(__name__)

# what a folder argument contributes: the containers FFmpeg reads that cameras and phones write


@dataclass(frozen=True)
class BatchRequest:
    """Everything `rtseg batch` was asked to do."""

    inputs: tuple[str, ...]  # video files, folders of videos, globs
    out: str  # the batch folder
    model: str | None = None  # a name or an .onnx path; None: the default, or chosen for target_fps
    target_fps: float | None = None  # without model: the most accurate model holding this rate per worker
    ray_address: str | None = None  # None: a local Ray cluster; "auto" or host:port: an existing one
    workers: int | None = None  # videos at once (Ray actors); None: every CPU available
    no_ray: bool = False  # one video at a time in this process
    json_lines: bool = False
    save_masks: bool = False
    retries: int = 2  # new attempts for a video whose worker died
    quiet: bool = False

    @classmethod
    def from_args(cls, args) -> "BatchRequest":
        return cls(
            inputs=tuple(args.videos),
            out=args.out,
            model=args.model,
            target_fps=args.target_fps,
            ray_address=args.ray_address,
            workers=args.workers,
            no_ray=args.no_ray,
            json_lines=args.json,
            save_masks=args.save_masks,
            retries=args.retries,
            quiet=args.quiet,
        )


@dataclass(frozen=True)
class WorkerSpec:
    """The model every worker loads once and keeps: the same for each video of the batch."""

    model: str  # what `resolve_model` takes: a manifest name or an absolute path
    name: str  # its name in results (with @HxW at another input size)
    input_size: tuple[int, int] | None = None
    threads: int | None = None  # inference threads (None: ONNX Runtime's default, every core)
    backend: str = "onnxruntime"

    def load(self):
        """The loaded model, as a slot the pipeline runs (threads as this worker's share of the machine)."""
        from ..core.modelinfo import resolve_model
        from ..runtime.slot import load_slot

        if self.threads:
            cv2.setNumThreads(self.threads)  # OpenCV's resize and drawing pool: within the share too
        return load_slot(resolve_model(self.model), self.backend, threads=self.threads, input_size=self.input_size)


@dataclass(frozen=True)
class VideoJob:
    """One video to process: where it is, what it looked like when planned, where its outputs go."""

    key: str
    input: str  # absolute path
    size: int
    mtime_ns: int
    frames: int | None  # what its header announces (the progress bar's share)
    outputs: VideoOutputs
    options: dict = field(hash=False)  # what else decides the outputs: model, sizes, which outputs

    def identity(self) -> dict:
        """What a done-record must repeat for this job to count as already done."""
        return {"input": self.input, "size": self.size, "mtime_ns": self.mtime_ns, "options": self.options}


@dataclass
class Plan:
    jobs: list[VideoJob]  # every video, in the order given
    todo: list[VideoJob]  # those no done-record vouches for
    records: dict[str, dict]  # key -> the done-record of each video skipped


def _is_output(path: Path, out_dir: Path | None) -> bool:
    """What the batch folder holds of a batch's own making: a finished video's files (KEY.mp4 or KEY.jsonl
    beside KEY.done.json, the record itself), its masks and its staging area. A folder or glob over a tree
    that contains the batch folder (`'videos/**' --out videos/segmented`) finds these on a re-run."""
    if out_dir is None or not path.is_relative_to(out_dir) or path == out_dir:
        return False
    first = path.relative_to(out_dir).parts[0]
    if first != path.name:  # below the batch folder: only masks and attempts are the batch's
        return first == PARTIAL or first.endswith(".masks")
    if path.name.endswith(".done.json"):
        return True
    return path.suffix in (".mp4", ".jsonl") and (out_dir / f"{path.stem}.done.json").exists()


def find_videos(inputs: tuple[str, ...], out_dir: Path | None = None) -> list[Path]:
    """The video files the arguments name (files, folders of videos, globs), absolute, each once, in order;
    a folder or glob leaves out the batch's own outputs in `out_dir`."""
    found: list[Path] = []
    for arg in inputs:
        if looks_like_glob(arg):
            paths = sorted(
                Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file() and Path(p).suffix.lower() not in IMAGE_SUFFIXES
            )
            paths = [p for p in paths if not _is_output(p.resolve(), out_dir)]
            if not paths:
                raise RtsegError(f"no videos match {arg}")
        elif not Path(arg).exists():
            raise RtsegError(f"no such file or folder: {arg}")
        elif Path(arg).is_dir():
            paths = sorted(
                p
                for p in Path(arg).iterdir()
                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not _is_output(p.resolve(), out_dir)
            )
            if not paths:
                raise RtsegError(f"folder {arg} holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
        elif Path(arg).suffix.lower() in IMAGE_SUFFIXES:
            raise RtsegError(f"{arg} is an image: rtseg batch takes videos (rtseg run segments images)")
        elif not Path(arg).is_file():  # a camera (/dev/video0), a pipe: rtseg run reads those live
            raise RtsegError(f"{arg} is not a video file (a device, a pipe or a socket): rtseg batch takes files")
        else:
            paths = [Path(arg)]
        found += [p.resolve() for p in paths]
    return list(dict.fromkeys(found))  # the same video named twice is processed once


def check_out_dir(out: str, videos: list[Path]) -> None:
    """Refuse a batch folder that is a file, or that would mix outputs with inputs: a re-run's glob would then
    take last run's overlays for videos, an output name could be an input's, and a video kept in the staging
    area or in a masks folder would be deleted with it."""
    folder = Path(out).resolve()
    if folder.exists() and not folder.is_dir():
        raise RtsegError(f"--out {out} is a file, not a folder")
    inside = [v for v in videos if v.parent == folder or _is_output(v, folder)]
    if inside:
        raise RtsegError(f"--out {out} holds this batch's input {inside[0].relative_to(folder)}: give the outputs a folder of their own")


def prepare_out_dir(out: str) -> Path:
    """The batch folder, created if needed (`check_out_dir` has accepted it), and writable."""
    folder = Path(out).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RtsegError(f"cannot create --out {out}: {e.strerror or e}") from e
    if not os.access(folder, os.W_OK):
        raise RtsegError(f"cannot write to --out {out}: not writable")
    return folder


def announced_frames(path: Path) -> int | None:
    """The frame count a video's header announces (None when it says none): only sizes the progress bar."""
    # FFmpeg, as the pipeline reads it: OpenCV's own AVI reader, which CAP_ANY tries first, would print its
    # complaints about a damaged file (binary bytes included) over the progress bar
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return n if n > 0 else None


def choose_model(request: BatchRequest, threads: int | None) -> WorkerSpec:
    """The one model of the batch: named, the default, or chosen (once, here) for --target-fps at the layout
    each worker runs (one stream on its threads), so every video of the batch is made by the same model."""
    from ..core.modelinfo import resolve_model

    if request.target_fps is not None and request.model is None:
        from ..selection.start import select_for_rate

        sel = select_for_rate(request.target_fps, "seg", "onnxruntime", 1, threads or os.cpu_count() or 1)
        info = sel.choice.info
        assert info is not None  # the selector's candidates are built from models
        return WorkerSpec(info.name, sel.choice.name, sel.choice.input_size, threads)
    info = resolve_model(request.model)
    ref = request.model or info.name
    if Path(ref).exists() and Path(ref).resolve() == info.path.resolve():
        ref = str(info.path.resolve())  # a file, not a manifest name: the same file from a worker's working directory
    return WorkerSpec(ref, info.name, None, threads)


def model_options(spec: WorkerSpec, request: BatchRequest) -> dict:
    """What decides a video's outputs besides the video: the model (its file too, so a re-export counts), its
    input size, which outputs were asked for. JSON values only, to compare equal with a record read back."""
    from ..core.modelinfo import resolve_model

    info = resolve_model(spec.model)
    stat = info.path.stat()
    return {
        "model": spec.name,
        "model_file": info.entry.get("sha256") or f"{stat.st_size}-{stat.st_mtime_ns}",
        "input_size": list(spec.input_size or info.input_size),
        "json_lines": request.json_lines,
        "save_masks": request.save_masks,
    }


def make_plan(videos: list[Path], out_dir: Path, options: dict, request: BatchRequest) -> Plan:
    """A job per video, named apart (stems repeated across folders are widened with their folder, as rtseg
    run names per-image outputs), and the split into what is done already and what is still to do."""
    jobs, todo, records = [], [], {}
    for path, key in zip(videos, unique_labels(videos)):
        try:
            st = path.stat()
        except OSError as e:
            raise RtsegError(f"cannot read {path}: {e.strerror or e}") from e
        outputs = VideoOutputs(out_dir, key, request.json_lines, request.save_masks)
        job = VideoJob(key, str(path), st.st_size, st.st_mtime_ns, None, outputs, options)
        jobs.append(job)
        record = read_record(outputs)
        if record_matches(record, outputs, job.identity()):
            records[key] = record
            continue
        todo.append(job)
        if record and record.get("input") not in (None, job.input):
            # names follow the batch's videos (a stem repeated elsewhere is widened): another set, other owners
            log.warning(f"rtseg: batch: {key}.* in {out_dir} were made from {record['input']}: they are replaced with {job.input}'s")
    # only the videos still to do are opened for their length: a resumed batch of thousands starts at once
    todo = [replace(j, frames=announced_frames(Path(j.input))) for j in todo]
    return Plan(jobs, todo, records)
