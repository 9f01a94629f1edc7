"""The `rtseg` command: run, eval, train, export, models, profile, bench, batch.

Each command reads its arguments once, into a frozen value (`RunSettings` from api/settings.py, `EvalRequest`,
...), and works from that; what the program says goes through `logging` (the "rtseg" logger, set up in `main`), while
results and reports are printed to stdout.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .core.constants import DEFAULT_H264_PRESET, H264_PRESETS
from .core.errors import RtsegError
from .core.tasks import TASKS, normalize_task

if TYPE_CHECKING:
    from .api.settings import BackendChoice, RunSettings
    from .training.engine_export import EngineRequest

log = logging.getLogger(__name__)

# How `rtseg run` ended, for scripts (README, "Exit codes"): 0 the input ended as announced; 1 an error (bad
# input, model or output; the message says which); 2 bad arguments; 3 a file ended before the frames its
# header announced and 4 a live source lost (`RunStats.exit_code`); 130 / 143 Ctrl-C / SIGTERM.

def _positive_float(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def _whole(text: str, low: int, what: str = "a whole number") -> int:
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


def _count(text: str) -> int:
    """A positive whole number (frames, loops, streams, threads, queue slots): 0 or less never makes sense."""
    return _whole(text, 1)


def _reconnect(text: str) -> int | None:
    """--reconnect: attempts in a row (0: none), or 'forever' (None)."""
    return None if text == "forever" else _whole(text, 0, "a number of attempts or 'forever'")


def _keyframe(text: str):
    """--keyframe: every Nth frame (N >= 1), or 'auto'."""
    from .temporal import KeyFrames

    try:
        return KeyFrames.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of frames >= 1 or 'auto', got {text!r}") from None


def _alpha(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def _split(text: str) -> str:
    if text in ("train", "val", "test") or (text.startswith("holdout:") and len(text) > len("holdout:")):
        return text
    raise argparse.ArgumentTypeError(f"must be train, val, test or holdout:DRIVE, got {text!r}")


def _size(text: str) -> tuple[int, int]:
    from .models import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


# -- rtseg run ---------------------------------------------------------------------------------------
def backend_choice(args: argparse.Namespace) -> "BackendChoice":
    """`--backend` (auto made concrete, once) and `--precision`."""
    from .api.settings import BackendChoice

    return BackendChoice.resolve(args.backend, args.precision)


def run_settings(args: argparse.Namespace) -> "RunSettings":
    """`rtseg run`'s arguments as the one settings value the runs work from (api/settings.py)."""
    from .api.segmenter import temporal_settings
    from .api.session import ModelChoice
    from .api.settings import RunSettings
    from .runtime.http_access import ServeAccess
    from .runtime.outputs import SinkRequest

    backend = backend_choice(args)
    # --target-fps with --model: run that model and report against the rate; without: select for it
    choice = ModelChoice(args.model, backend.name, tuple(backend.options().items()),
                         None if args.model else args.target_fps, args.task, args.margin, args.max_latency,
                         not args.no_adapt, args.input_size, args.alpha, args.score_threshold, args.legend,
                         args.rank_by, temporal_settings(args.keyframe, args.smooth, args.flow))
    sinks = SinkRequest(args.output, args.save_masks, args.json, show=not args.no_show, quiet=args.quiet,
                        codec=args.codec, h264_preset=args.h264_preset, serve=args.serve,
                        serve_access=ServeAccess(args.serve_token, tuple(args.serve_allow_host)),
                        overwrite=args.overwrite)
    return RunSettings(args.source, args.camera, backend, choice, sinks, args.target_fps, args.streams, args.threads,
                       args.realtime, args.frames, args.loop, args.queue_size, args.stats, args.quiet, args.reconnect)


def cmd_run(args: argparse.Namespace) -> int:
    """`rtseg run`: segment a source through the pipeline, live; the exit status says how it stopped."""
    from .runtime.source_list import is_source_list

    # several sources (or --output-dir): one pipeline each, one model shared (api/multi.py)
    sources, args.source = args.source, (args.source[0] if len(args.source) == 1 else None)
    settings = run_settings(args)
    if len(sources) > 1 or args.output_dir is not None or any(map(is_source_list, sources)):
        from .api.multi import run_many

        return run_many(settings, sources, args.output_dir)
    from .api.run import run_one

    return run_one(settings)


# -- rtseg batch -------------------------------------------------------------------------------------
def cmd_batch(args: argparse.Namespace) -> int:
    """`rtseg batch`: many video files through the pipeline on Ray workers (rtseg/fleet/); resumable."""
    from .fleet.batch import batch_command
    from .fleet.plan import BatchRequest

    return batch_command(BatchRequest.from_args(args))


def cmd_serve(args: argparse.Namespace) -> int:
    """`rtseg serve --streams FILE`: many live cameras, one server, on Ray workers (rtseg/fleet/live.py)."""
    from .fleet.live import ServeRequest, serve_command
    from .runtime.group import GroupSettings
    from .runtime.http_access import ServeAccess

    backend = backend_choice(args)
    settings = GroupSettings(model=args.model, backend=backend.name, backend_options=tuple(backend.options().items()),
                             target_fps=args.target_fps, adapt=not args.no_adapt, task=args.task, rank_by=args.rank_by,
                             input_size=args.input_size, alpha=args.alpha, legend=args.legend,
                             reconnect=args.reconnect, quiet=args.quiet)
    return serve_command(ServeRequest(args.streams, settings, args.listen, args.ray_address, args.no_ray, args.workers,
                                      args.cpus_per_worker, args.max_restarts, args.duration, args.view_fps,
                                      backend.why, args.stats,
                                      ServeAccess(args.serve_token, tuple(args.serve_allow_host))))


def requested_models(models: str) -> list:
    """`--models all` (every shipped model) or NAME,NAME,..."""
    from .core.modelinfo import resolve_model

    from .selection.pick import shipped_models

    return shipped_models() if models == "all" else [resolve_model(n) for n in models.split(",")]


def cmd_profile(args: argparse.Namespace) -> int:
    """`rtseg profile`: each model's speed on this machine (measured once, then cached), as a table."""
    from .runtime.pipeline import inference_layout
    from .selection.profiling import ensure_profiles, machine_key

    streams, threads = inference_layout(args.streams, args.threads, live=args.live)
    backend = backend_choice(args)
    if backend.why:
        print(f"backend auto: {backend.why}")
    infos = requested_models(args.models)
    profiles = ensure_profiles(infos, backend.name, streams, threads, force=args.force, frames=args.frames)
    print(f"machine: {machine_key(backend.name, streams, threads)}")
    print(f"{'model':<38}{'model FPS':>10}{'p50 ms':>8}{'p95 ms':>8}{'e2e FPS':>9}{'p50 ms':>8}{'p95 ms':>8}"
          f"  {'kind':<9}{'others':>7}  measured")
    for p in profiles.values():
        others = "?" if p.others_load is None else f"{100 * p.others_load:.0f}%" + ("!" if p.busy else "")
        print(f"{p.model:<38}{p.model_fps:>10.1f}{p.model_ms_p50:>8.1f}{p.model_ms_p95:>8.1f}"
              f"{p.e2e_fps:>9.1f}{p.e2e_ms_p50:>8.1f}{p.e2e_ms_p95:>8.1f}  {p.kind:<9}{others:>7}  {p.date}")
    print("kind: measured (full), scaled (first use: a reference speed times one probe's ratio here), estimate (a few "
          "inferences here), online (a run's own speed); others: share of "
          "the machine other programs used meanwhile (! busy: measured again next time)")
    return 0


# -- rtseg eval --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRequest:
    """`rtseg eval`: which model, on which data and split, and where the report goes."""

    model: str | None
    data: str
    backend: "BackendChoice"
    split: str = "val"
    task: str | None = None
    threads: int | None = None
    input_size: tuple[int, int] | None = None
    json_path: str | None = None
    update_manifest: bool = False
    quiet: bool = False
    stress: bool = False              # photometrically stressed copies of the split
    class_map: str | None = None      # model classes -> dataset classes (a shipped name or a JSON file)
    keyframe: object = None           # KeyFrames: run the split as a sequence with key frames (or None)
    smooth: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvalRequest:
        return cls(args.model, args.data, backend_choice(args), args.split, args.task, args.threads,
                   args.input_size, args.json, args.update_manifest, args.quiet, args.stress, args.class_map,
                   args.keyframe, args.smooth)

    @property
    def temporal(self) -> bool:
        """Whether the split runs as a sequence (key frames or smoothing) rather than as separate images."""
        return self.smooth or (self.keyframe is not None and not self.keyframe.every_frame)

    def metrics_suffix(self) -> str:
        """What a setting adds to the manifest's metrics key: `+stress`, `+keyframe3`, `+smooth`."""
        if self.stress:
            return "+stress"
        if not self.temporal:
            return ""
        return ("" if self.keyframe is None or self.keyframe.every_frame else f"+keyframe{self.keyframe.interval}") \
            + ("+smooth" if self.smooth else "")

    def command(self, key: str) -> str:
        """The `rtseg eval` line that measures this again, as recorded beside the numbers."""
        return (f"rtseg eval --model {self.model} --data {self.data} --split {self.split}"
                + (" --stress" if self.stress else "") + (f" --task {self.task}" if self.task else "")
                + (f" --keyframe {self.keyframe.interval}" if self.keyframe is not None and not self.keyframe.every_frame else "")
                + (" --smooth" if self.smooth else "")
                + (f" --class-map {self.class_map}" if self.class_map else "")
                + (f" --input-size {self.input_size[0]}x{self.input_size[1]}" if "@" in key else ""))


def cmd_eval(args: argparse.Namespace) -> int:
    """`rtseg eval`: a model's accuracy on a split, printed, and kept in a JSON file or the manifest on request."""
    from .evaluation.evaluate import evaluate, format_report
    from .core.modelinfo import resolve_model
    from .runtime.slot import load_slot

    request = EvalRequest.from_args(args)
    if request.backend.name == "null":
        raise RtsegError("--backend null runs no model: it measures the pipeline, not accuracy")
    class_map = None
    if request.class_map:
        from .data.classmap import load_class_map

        class_map = load_class_map(request.class_map)
    info = resolve_model(request.model)
    if request.temporal and (request.stress or class_map is not None or (request.task or info.task) not in ("seg", "segdet")
                             or (request.task or "seg") != "seg"):
        raise RtsegError("--keyframe and --smooth measure segmentation on a sequence: not with --stress, --class-map, "
                         f"--task det or a box-only model ({info.name} is {info.task})")
    slot = load_slot(info, request.backend.name, request.threads, request.input_size, **request.backend.options())
    if request.backend.why:
        log.info(f"rtseg: backend auto: {request.backend.why}")
    if request.temporal:
        return eval_sequence(request, info, slot)
    report = evaluate(slot, request.data, request.split, request.task, progress=not request.quiet,
                      stress=request.stress, class_map=class_map)
    slot.close()
    # what selected the model's epoch, when its record says (a bare .onnx file carries no training record)
    trained_with = info.entry.get("training", {}).get("val_split", "val" if info.entry.get("training") else None)
    if trained_with is None:
        pass
    elif request.split.startswith("holdout:") and trained_with != request.split:
        # this drive was in the model's training data: the number is not a held-out measurement
        report["warning"] = (f"{info.name} was trained with --val-split {trained_with}: drive "
                             f"{request.split.split(':', 1)[1]} was in its training data")
    elif request.split == "val" and trained_with.startswith("holdout:"):
        # a held-out run trains on every other frame, val's included
        report["warning"] = f"{info.name} was trained with --val-split {trained_with}: val's frames were in its training data"
    return keep_report(request, info, report, format_report(report))


def keep_report(request: EvalRequest, info, report: dict, text: str) -> int:
    """Print an eval report, and write it to --json and the manifest when asked."""
    report["command"] = "rtseg " + " ".join(sys.argv[1:] if argv_is_rtseg() else [])
    print(text)
    if request.json_path:
        Path(request.json_path).write_text(json.dumps(report, indent=2) + "\n")
    if request.update_manifest:
        record_eval(request, info, report)
    return 0


def eval_sequence(request: EvalRequest, info, slot) -> int:
    """`rtseg eval --keyframe N / --smooth`: the split as a sequence, against every frame (evaluation/sequence.py)."""
    from .api.segmenter import temporal_settings
    from .evaluation.sequence import evaluate_sequence, format_sequence_report

    try:
        report = evaluate_sequence(slot, request.data, request.split, temporal_settings(request.keyframe, request.smooth),
                                   progress=not request.quiet)
    finally:
        slot.close()
    return keep_report(request, info, report, format_sequence_report(report))


def record_eval(request: EvalRequest, info, report: dict) -> None:
    """`--update-manifest`: keep the measurement in the model's manifest entry."""
    from .core.manifest import Manifest
    from .core.modelinfo import metrics_key

    manifest = Manifest.load()
    if manifest.entry(request.model) is None:
        raise RtsegError(f"--update-manifest needs a model name from {manifest.path}, got {request.model!r}")
    keep = ("miou", "pixel_accuracy", "per_class_iou", "detection", "images", "input_size", "backend", "machine",
            "date", "split_note", "warning", "class_map", "keyframe", "smooth", "flow", "every_frame_miou", "drop",
            "inferred_share", "inconsistency", "every_frame_inconsistency")
    key = metrics_key(request.split + request.metrics_suffix(), request.input_size, info)
    manifest.record_metrics(request.model, key, {k: report[k] for k in keep if k in report} | {"command": request.command(key)})
    manifest.save()
    print(f"updated {manifest.path}: {request.model} {key}")


def argv_is_rtseg() -> bool:
    """Whether this process is the `rtseg` command (so its argv is worth recording)."""
    return Path(sys.argv[0]).name in ("rtseg", "__main__.py")


def recorded_command(default: str | None = None) -> str | None:
    """The command line as the user typed it (`rtseg ...`), or `default` when rtseg was called otherwise."""
    return "rtseg " + " ".join(sys.argv[1:]) if argv_is_rtseg() else default


# -- rtseg train / export / models -----------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    """`rtseg train` (its arguments are read by training.train_args)."""
    from .training.train import train

    out = train(args)
    print(f"done: {out / 'best.pt'} (best val mIoU), {out / 'log.csv'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`rtseg export`: FP32 ONNX from a checkpoint, an INT8 sibling of a shipped model, or a TensorRT engine."""
    from .core.modelinfo import ENGINES_DIR, MANIFEST

    out_dir = Path(args.out_dir) if args.out_dir else ENGINES_DIR
    manifest = None if args.no_manifest else (Path(args.manifest) if args.manifest else MANIFEST)
    if args.format == "engine":
        if not args.model:
            raise RtsegError("--format engine needs --model NAME|PATH (a shipped FP32 ONNX model)")
        from .training.engine_export import EngineRequest

        return export_trt_engine(EngineRequest(
            args.model, args.precision, args.min_shape, args.opt_shape, args.max_shape, cache_dir=args.cache_dir,
            calib_data=args.calib_data, calib_images=args.calib_images, gate_data=args.gate_data,
            max_drop=args.max_drop, force=args.force))
    if args.precision == "fp16":
        raise RtsegError("--precision fp16 is for TensorRT engines (--format engine); ONNX files ship FP32 or INT8")
    if args.precision == "int8":
        if not args.model:
            raise RtsegError("--precision int8 needs --model NAME (a shipped FP32 model)")
        if not args.calib_data:
            raise RtsegError("--precision int8 needs --calib-data DIR (CamVid-layout root or a folder of frames)")
        from .training.int8_export import Int8Request, export_int8

        export_int8(Int8Request(
            args.model, args.calib_data, out_dir, manifest, args.name, args.calib_images, args.calib_method,
            args.gate_data, args.max_drop, args.force, args.qdq, recorded_command()))
        return 0
    if not args.checkpoint:
        raise RtsegError("export needs --checkpoint (FP32 ONNX from training) or --model NAME --precision int8")
    from .training.export import ExportRequest, export_checkpoint

    entry = export_checkpoint(ExportRequest(
        Path(args.checkpoint), out_dir, name=args.name, manifest_path=manifest, set_default=args.set_default,
        trained_on=args.trained_on, note=args.note))
    print(f"wrote {out_dir / entry['file']} ({entry['params'] / 1e6:.2f} M params, {entry['gflops']:.2f} GFLOPs at "
          f"{entry['input_size'][0]}x{entry['input_size'][1]})" + (f" and its entry in {manifest}" if manifest else ""))
    print(f"next: rtseg eval --model {entry['name']} --data DIR --split val --update-manifest")
    return 0


def export_trt_engine(request: EngineRequest) -> int:
    """Build (or reuse) a TensorRT engine for an `EngineRequest` and say where it is."""
    from .training.engine_export import export_engine

    r = export_engine(request)
    print(f"engine: {r['engine']} ({r['precision']}, {r['profile']}, {r['megabytes']} MB)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """`rtseg models`: the models as a table (`NAME`: one model's classes; `--pareto`: speed against accuracy here)."""
    from .api.catalog import list_models
    from .core.paths import user_manifest

    if args.pareto:
        return print_pareto(args.task, args.rank_by)
    cards = list_models()
    if not cards:
        from .core.modelinfo import MANIFEST

        raise RtsegError(f"no models in {MANIFEST} or {user_manifest()}")
    if args.name:
        return print_model_classes(args.name)
    fps = measured_fps_here(cards)
    w = max(36, *(len(m.name) + 1 for m in cards))  # the longest name still leaves a space before its task
    print(f"{'':2}{'name':<{w}}{'task':<7}{'prec':<5}{'input':>9}{'params':>9}{'GFLOPs':>8}{'mIoU':>7}{'FPS here':>10}"
          "  classes; trained")
    # one accuracy column, its meaning said by the group: a held-out drive, or CamVid val (optimistic); the
    # held-out models first, most accurate first, so the older val figures never read as the better models
    held = sorted((m for m in cards if m.heldout_miou is not None), key=lambda m: -m.heldout_miou)
    groups = [(f"held out: mIoU on drive {held[0].heldout_split.split(':', 1)[1]}, which no frame of theirs trained on"
               if held else "", held),
              ("selected on CamVid val: mIoU on drive 0016E5, optimistic (neighbouring frames of that drive trained them)",
               [m for m in cards if m.heldout_miou is None and m.val_miou is not None]),
              ("no segmentation figure (box models: rtseg eval --task det; imported models: rtseg eval)",
               [m for m in cards if m.heldout_miou is None and m.val_miou is None])]
    for title, members in groups:
        if not members:
            continue
        print(f"  -- {title}")
        for m in members:
            params = f"{m.params / 1e6:>8.2f}M" if m.params else f"{'-':>9}"
            gflops = f"{m.gflops:>8.2f}" if m.gflops else f"{'-':>8}"
            miou = m.heldout_miou if m.heldout_miou is not None else m.val_miou
            here = f"{fps[m.name]:.0f}" if m.name in fps else "-"
            print(f"{'* ' if m.default else '  '}{m.name:<{w}}{m.task:<7}{m.precision:<5}"
                  f"{m.input_size[0]:>4}x{m.input_size[1]:<4}{params}{gflops}"
                  f"{'' if miou is None else f'{100 * miou:.1f}':>7}{here:>10}  "
                  f"{len(m.classes)} ({', '.join(m.classes[:4])}{', ...' if len(m.classes) > 4 else ''}); {m.origin}")
    print("* default model; FPS here: end to end on this machine, as `rtseg profile` measured it (- until it has)"
          + (f"; imported models live in {user_manifest().parent}" if any(m.imported for m in cards) else "")
          + "; rtseg models NAME lists a model's classes and colours")
    return 0


def measured_fps_here(cards) -> dict[str, float]:
    """End-to-end FPS of each model on this machine, from the speed profiles `rtseg profile` (and the selector)
    keep; only measured ones, read without measuring anything."""
    from .backends.choice import resolve_backend
    from .core.modelinfo import resolve_model
    from .runtime.pipeline import inference_layout
    from .selection.profiling import ProfileCache, machine_key

    try:
        streams, threads = inference_layout(None, None, live=False)
        cache = ProfileCache(machine_key(resolve_backend("auto")[0], streams, threads))
        found = {}
        for m in cards:
            p = cache.get(resolve_model(m.name))
            if p is not None and p.kind == "measured":
                found[m.name] = p.e2e_fps
        return found
    except (RtsegError, OSError, ValueError):
        return {}  # no profile to read is no column to fill, never a failed listing


def print_model_classes(name: str) -> int:
    """`rtseg models NAME`: class id -> name -> colour (what the mask PNGs' values and the overlay mean)."""
    from .core.modelinfo import resolve_model

    info = resolve_model(name)
    print(f"{info.name}: {info.task}, input {info.input_size[0]}x{info.input_size[1]}, file {info.path}")
    print(f"{'id':>3}  {'class':<16}{'RGB':<15}{'hex':<8}")
    for i, n in enumerate(info.classes):
        rgb = tuple(info.palette_rgb[i]) if i < len(info.palette_rgb) else (0, 0, 0)
        print(f"{i:>3}  {n:<16}{'%d,%d,%d' % rgb:<15}#{'%02x%02x%02x' % rgb}")
    if info.det_classes:
        print("box classes: " + ", ".join(f"{i} {n}" for i, n in enumerate(info.det_classes)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """`rtseg import`: a user's TFLite or ONNX segmentation model, converted and listed under $RTSEG_HOME."""
    from .core.paths import user_manifest
    from .training.importer import ImportRequest, import_model

    req = ImportRequest(Path(args.file), args.name, Path(args.labels) if args.labels else None,
                        Path(args.palette) if args.palette else None, args.mean, args.std, args.input_size,
                        args.force)
    entry = import_model(req, user_manifest())
    print(f"imported {entry['name']}: {len(entry['classes'])} classes, input {entry['input_size'][0]}x"
          f"{entry['input_size'][1]}, in {user_manifest().parent / entry['file']}")
    print(f"next: rtseg run --camera 0 --model {entry['name']}")
    return 0


@dataclass(frozen=True)
class BenchRequest:
    """`rtseg bench`: models x backends, what to measure on, and how long (`--quick` shortens all of it)."""

    models: str
    backends: tuple[str, ...]
    video: str
    out: Path
    data: str | None = None
    split: str = "val"
    frames: int = 300
    iters: int = 100
    reps: int = 3
    eval_images: int | None = None
    peers: bool = True
    naive: bool = True
    quiet: bool = False
    keyframes: tuple = ()             # KeyFrames settings each model is also measured with

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchRequest:
        length = dict(iters=20, reps=1, frames=min(args.frames, 60), eval_images=20) if args.quick else \
            dict(iters=args.iters, reps=args.reps, frames=args.frames, eval_images=None)
        # --quick without --models/--backends: the default and the fastest model on ONNX Runtime, and the naive loop
        backends, peers = args.backends or ("onnxruntime" if args.quick else BENCH_BACKENDS), not args.no_peers
        if args.quick and args.models is None:
            peers = False
        try:
            keyframes = tuple(_keyframe(k) for k in args.keyframes.split(",")) if args.keyframes else ()
        except argparse.ArgumentTypeError as e:
            raise RtsegError(f"--keyframes: {e}") from None
        models = args.models or ("quick" if args.quick else "all")
        return cls(models, tuple(backends.split(",")), args.video, Path(args.out), args.data, args.split,
                   peers=peers, naive=not args.no_naive, quiet=args.quiet, keyframes=keyframes, **length)


BENCH_BACKENDS = "onnxruntime,torch"


def cmd_bench(args: argparse.Namespace) -> int:
    """`rtseg bench`: models x backends beside the alternatives; tables and a plot in --out."""
    from .evaluation.bench import run_bench, write_results

    request = BenchRequest.from_args(args)
    if request.models == "quick":
        from .selection.pick import quick_bench_models

        infos = quick_bench_models()
    else:
        infos = requested_models(request.models)
    if not infos:
        raise RtsegError("no models to benchmark")
    backends, peers, naive = list(request.backends), request.peers, request.naive
    if not _importable("torch"):  # the runtime install: measure what it can, say what it leaves out, up front
        skipped = [what for what, on in (("the torch backend", "torch" in backends), ("torchvision's peer models", peers),
                                         ("the naive PyTorch loop", naive)) if on]
        if skipped:
            log.warning(f"rtseg: bench: PyTorch is not installed, so {', '.join(skipped)} will not be measured "
                        "(pip install 'rtseg[train]' for them)")
        backends, peers, naive = [b for b in backends if b != "torch"], False, False
        if not backends:
            raise RtsegError("--backends: nothing left to measure without PyTorch")
    if request.data and any(i.task != "seg" for i in infos) and not _importable("pycocotools"):
        raise RtsegError("box models' AP needs pycocotools: pip install 'rtseg[eval]' (or --models with seg models only)")
    rows, env = run_bench(infos, backends, data=request.data, split=request.split, video=request.video,
                          frames=request.frames, iters=request.iters, reps=request.reps, peers=peers,
                          naive=naive, eval_images=request.eval_images, progress=not request.quiet,
                          keyframes=request.keyframes)
    out = request.out
    write_results(rows, env, out, recorded_command("rtseg bench"))
    print((out / "bench.md").read_text())
    print(f"wrote {out}/bench.md, bench.csv, bench.json" + (", bench.png" if (out / "bench.png").exists() else ""))
    return 0


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a module hidden or broken (sys.modules[name] = None)
        return False


def print_pareto(task: str, rank_by: str = "auto") -> int:
    """`rtseg models --pareto`: FPS against accuracy for `task` on this machine, the Pareto front marked."""
    from .runtime.pipeline import inference_layout
    from .selection.pick import models_for_task
    from .selection.profiling import ensure_profiles
    from .selection.selector import build_candidates, pareto_front

    streams, threads = inference_layout(None, None, live=False)
    infos, split = models_for_task(task, rank_by)
    candidates = build_candidates(infos, ensure_profiles(infos, "onnxruntime", streams, threads, split=split), task, split)
    front = {c.name for c in pareto_front(candidates)}
    where = "held-out" if split.startswith("holdout:") else "val"
    metric = {"seg": f"{where} mIoU", "det": f"{where} mAP50", "segdet": "mean"}[normalize_task(task)]
    width = max([40] + [len(c.name) + 1 for c in candidates])
    print(f"{'':2}{'model':<{width}}{'e2e FPS':>9}{'p95 ms':>8}{metric:>15}")
    for c in sorted(candidates, key=lambda c: -c.fps):
        print(f"{'* ' if c.name in front else '  '}{c.name:<{width}}{c.fps:>9.1f}{c.latency_ms:>8.1f}{100 * c.accuracy:>15.1f}")
    print(f"* on the Pareto front (no other model is both faster and more accurate here); accuracy on {split}"
          + (" (drive-disjoint)" if where == "held-out" else " (optimistic: its drive trains the models)"))
    if any(c.keyframe > 1 for c in candidates):
        print("/kfN: the model on every Nth frame, optical flow between; its accuracy less the drop that interval "
              "measured on the 15 Hz val sequence (rtseg eval --keyframe N)")
    return 0


def add_temporal_args(p: argparse.ArgumentParser, keyframe_default: str | None, keyframe_help: str,
                      smooth_help: str) -> None:
    """--keyframe and --smooth, as `rtseg run` and `rtseg eval` take them."""
    p.add_argument("--keyframe", metavar="N|auto", type=_keyframe, default=keyframe_default, help=keyframe_help)
    p.add_argument("--smooth", action="store_true", help=smooth_help)


def add_backend_args(p: argparse.ArgumentParser) -> None:
    from .backends import available_backends

    p.add_argument("--backend", default="auto", choices=available_backends(),
                   help="auto (default): TensorRT on an NVIDIA GPU when installed, else ONNX Runtime CUDA, else the CPU; "
                        "null: no inference at all (a fixed class map), to measure the pipeline alone")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16",
                   help="TensorRT engine precision (default fp16; int8 builds from the model's TensorRT INT8 sibling: rtseg export --model NAME --precision int8 --qdq tensorrt)")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in rtseg's own style: one line `rtseg: error: ...` and exit status 2 (argparse prints its
    whole usage block first, which buries the one line that says what is wrong); `--help` shows the usage."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] + " " if " " in self.prog else ""
        self.exit(2, f"rtseg: error: {message} (see rtseg {command}--help)\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's default beside its help (unless the help already speaks of one); examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not text or "default" in text or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


EXAMPLES = {
    "run": ["rtseg run video.mp4 --output overlay.mp4 --json frames.jsonl --save-masks masks/",
            "rtseg run --camera 0 --target-fps 30 --serve 8080     # the selector holds 30 FPS; watch in a browser",
            "rtseg run cams.txt --target-fps 15 --output-dir rec --serve 8080   # every camera at 15 FPS, recorded"],
    "eval": ["rtseg eval --data ../shared/data/camvid --split holdout:0006R0     # the default, on a drive it never saw",
             "rtseg eval --model mnv2-050-lraspp-os32-240x320-voc-kd --data ../shared/data/camvid --split val --keyframe 3"],
    "train": ["rtseg train --data ../shared/data/camvid --width 0.5 --head lraspp --output-stride 32 --input-size 240x320",
              "rtseg train --data ../shared/data/camvid --width 0.5 --head lraspp --output-stride 32 --input-size 240x320 "
              "--pretrained voc-tflite:../shared/data/pretrained/deeplabv3_mnv2_dm05_pascal_quant.tflite "
              "--val-split holdout:0006R0 --epochs 40"],
    "export": ["rtseg export --checkpoint runs/mnv2-050-lraspp-os32-240x320/best.pt",
               "rtseg export --model mnv2-100-dlv3p-os16-288x384-voc --precision int8 --calib-data ../shared/data/camvid"],
    "import": ["rtseg import deeplabv3_mnv2_pascal_quant.tflite --name voc && rtseg run --camera 0 --model voc",
               "rtseg import room.onnx --labels labels.txt --palette palette.txt --name room"],
    "models": ["rtseg models", "rtseg models mnv2-050-lraspp-os32-240x320-voc-kd     # its class ids, names and colours"],
    "bench": ["rtseg bench --quick",
              "rtseg bench --data ../shared/data/camvid --video ../shared/data/video/vtest.avi --out bench-results"],
    "profile": ["rtseg profile", "rtseg profile --models mnv2-050-lraspp-os32-240x320-voc-kd --force"],
    "serve": ["rtseg serve --streams cams.txt --listen 0.0.0.0:8080 --target-fps 15   # a local Ray cluster, every core",
              "rtseg serve --streams cams.toml --ray-address auto --cpus-per-worker 4   # on the cluster `ray start` runs"],
    "batch": ["rtseg batch 'videos/*.mp4' --out segmented --json     # every core; run it again to resume",
              "rtseg batch videos/ --out segmented --ray-address auto --target-fps 15   # on the cluster `ray start` runs"],
}


def _command(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", formatter_class=_Help,
                          epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[name]))


def build_parser() -> argparse.ArgumentParser:
    from .training.train_args import add_train_args

    p = _Parser(prog="rtseg", description="Real-time video segmentation (MobileNetV2, ONNX Runtime, TensorRT)",
                                formatter_class=_Help, epilog="examples:\n" + "\n".join(
                                    f"  {EXAMPLES[c][0]}" for c in ("run", "models", "eval")) + "\n  rtseg COMMAND --help")
    p.add_argument("--version", action="version", version=f"rtseg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = _command(sub, "run", "segment a video, images, a stream or a camera, live")
    r.add_argument("source", nargs="*", help="video file, image, folder or glob of images, or rtsp:// / http:// URL; "
                                             "several (or a list of them: a .txt or .toml file): one pipeline each, "
                                             "one model shared (needs --output-dir or --serve)")
    r.add_argument("--camera", type=int, metavar="N", help="camera index instead of SOURCE")
    r.add_argument("--model", help="shipped model name or path to an .onnx file (default: the manifest's default)")
    add_backend_args(r)
    r.add_argument("--streams", type=_count, default=None,
                   help="frames inferred in parallel (default: one per core up to 4 for files, 1 for live sources)")
    r.add_argument("--threads", type=_count, default=None, help="inference threads per stream (default: cores / streams)")
    r.add_argument("--input-size", type=_size, help="run the model at HxW instead of its native size")
    r.add_argument("--output", metavar="FILE", help="overlay video (.mp4/.avi/.mkv) or image (.png/.jpg)")
    r.add_argument("--codec", choices=["auto", "h264", "mp4v"], default="auto",
                   help="video output: h264 (browser-playable, through PyAV), mp4v "
                        "(MPEG-4 Part 2, as OpenCV writes it; through PyAV when installed), or auto: h264 when PyAV is "
                        "installed (default: auto)")
    r.add_argument("--h264-preset", choices=H264_PRESETS, default=DEFAULT_H264_PRESET,
                   help="x264's speed/size trade for H.264 output: ultrafast takes the least CPU a frame (0.56x "
                        "superfast's, for 1.5x its bit rate); slower presets make smaller files for long "
                        f"recordings (default: {DEFAULT_H264_PRESET})")
    r.add_argument("--save-masks", metavar="DIR", help="write one PNG class-id map per frame")
    r.add_argument("--json", metavar="FILE", nargs="?", const=True,
                   help="write one JSON line per frame (with --output-dir: --json alone, to DIR/<label>.jsonl)")
    r.add_argument("--output-dir", metavar="DIR",
                   help="an existing folder, holding no input, for each source's outputs: <label>.mp4 (overlay) "
                        "and, with --json, <label>.jsonl (labels: file stems, cam<N>, host_port_path)")
    r.add_argument("--stats", metavar="FILE", help="write the run summary as JSON")
    r.add_argument("--overwrite", action="store_true",
                   help="let --output/--json replace an input file and masks replace their own images: written "
                        "aside, moved over the input only after the run read all of it (else kept as *.partial)")
    r.add_argument("--serve", metavar="[HOST:]PORT",
                   help="serve the live overlay over HTTP: a page at /, MJPEG at /stream.mjpg, numbers at "
                        "/stats.json (several sources: a grid at /, each source's at /<label>/); a bare PORT binds "
                        "127.0.0.1; 0.0.0.0:PORT or [::]:PORT opens it to the network, behind a token (printed "
                        "as a URL once, unless --serve-token gives it)")
    r.add_argument("--serve-token", metavar="TOKEN",
                   help="the token --serve asks for (default: $RTSEG_SERVE_TOKEN; else none on loopback, and one "
                        "made for the run beyond it); a browser gives it once as ?token=, then as a cookie; a "
                        "program as ?token= or 'Authorization: Bearer TOKEN'")
    r.add_argument("--serve-allow-host", metavar="NAME", action="append", default=[],
                   help="a name, beyond this machine's and the bound address, that browsers may reach --serve by "
                        "(a proxy's, a DNS alias); other Host headers are refused against DNS rebinding "
                        "(repeatable; '*': any)")
    r.add_argument("--no-show", action="store_true", help="no window (automatic without a display)")
    r.add_argument("--alpha", type=_alpha, default=0.5, help="overlay opacity, 0..1 (default 0.5)")
    r.add_argument("--score-threshold", type=_alpha, default=0.3, help="boxes below this score are not shown (0..1)")
    r.add_argument("--legend", action="store_true", help="draw the class colour legend on the overlay")
    r.add_argument("--target-fps", type=_positive_float,
                   help="without --model: run the most accurate model that holds this rate here, and keep it held "
                        "(several sources: every source at this rate, one model for them all, switched together)")
    r.add_argument("--max-latency", type=_positive_float, metavar="MS", help="with --target-fps: p95 latency bound")
    r.add_argument("--task", type=normalize_task, choices=TASKS, default="seg", help="with --target-fps: what the model must do")
    r.add_argument("--margin", type=_positive_float, default=1.1, help="with --target-fps: speed margin at start")
    r.add_argument("--no-adapt", action="store_true", help="with --target-fps: choose once, never switch")
    r.add_argument("--rank-by", choices=["auto", "heldout", "val"], default="auto",
                   help="with --target-fps: the accuracy that ranks the models: heldout (drive 0006R0, never trained "
                        "on), val (optimistic), or auto: heldout when at least two models have it")
    add_temporal_args(r, "1", "run the model on every Nth frame and carry its result to the frames between by optical "
                      "flow (auto: a new key frame when the motion says so; a scene cut always forces one)",
                      "steadier masks: blend each frame's classes with the motion-compensated frames before it")
    r.add_argument("--flow", choices=["ultrafast", "fast", "medium"], default=None,
                   help="optical flow preset (default: ultrafast with --keyframe, medium for --smooth alone)")
    r.add_argument("--realtime", action="store_true", help="play a file at its own frame rate, like a camera")
    r.add_argument("--reconnect", type=_reconnect, default=5, metavar="N|forever",
                   help="live sources: when the stream ends, fails or stalls for 5 s, reopen it up to N times in a row "
                        "(back-off 0.5 s doubling to 8 s), 'forever', or 0 to end the run with it (default: 5)")
    r.add_argument("--frames", type=_count, metavar="N", help="stop after N frames")
    r.add_argument("--loop", type=_count, default=1, metavar="N", help="play a file N times over")
    r.add_argument("--queue-size", type=_count, default=2, help="frames buffered between stages (files)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.set_defaults(func=cmd_run)

    e = _command(sub, "eval", "per-class IoU and mIoU on a CamVid-layout split")
    e.add_argument("--model", help="shipped model name or path to an .onnx file")
    e.add_argument("--data", required=True, help="folder with <split>/ and <split>annot/")
    e.add_argument("--split", default="val", type=_split,
                   help="train, val, test, or holdout:DRIVE (every frame of one drive, e.g. holdout:0006R0) "
                        "(default: val)")
    e.add_argument("--task", type=normalize_task, choices=TASKS, help="what to measure (default: what the model predicts)")
    add_backend_args(e)
    e.add_argument("--threads", type=_count, default=None)
    e.add_argument("--input-size", type=_size, help="evaluate at HxW instead of the model's size")
    e.add_argument("--json", metavar="FILE", help="write the results as JSON")
    e.add_argument("--update-manifest", action="store_true", help="record the result in engines/manifest.json")
    e.add_argument("--stress", action="store_true",
                   help="measure on photometrically stressed copies of the split (brighter, darker, gamma 0.5 and "
                        "2.0, blown highlights): what the INT8 gate checks besides the plain split")
    add_temporal_args(e, None, "run the split as a sequence with the model on every Nth frame (propagated between), "
                      "against every frame on the same frames", "run the split as a sequence with --smooth")
    e.add_argument("--class-map", metavar="NAME|FILE",
                   help="merge the model's classes onto the data's before scoring: a JSON file {model class: "
                        "data class}, every model class mapped, or a shipped mapping (cityscapes-to-camvid)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    t = _command(sub, "train", "train a MobileNetV2 segmentation model")
    add_train_args(t)
    t.set_defaults(func=cmd_train)

    x = _command(sub, "export", "export a trained checkpoint to ONNX and add it to the manifest")
    x.add_argument("--checkpoint", help="best.pt or last.pt from rtseg train (FP32 ONNX export)")
    x.add_argument("--model", help="--precision int8 or --format engine: the shipped FP32 model to start from")
    x.add_argument("--format", choices=["onnx", "engine"], default="onnx",
                   help="onnx (default), or a TensorRT engine built here and cached (needs an NVIDIA GPU)")
    x.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="fp32 | int8 for ONNX; fp32 | fp16 | int8 for engines")
    x.add_argument("--min-shape", type=_size, metavar="HxW", help="engine: smallest input (default: the model's size)")
    x.add_argument("--opt-shape", type=_size, metavar="HxW", help="engine: the size TensorRT tunes for")
    x.add_argument("--max-shape", type=_size, metavar="HxW", help="engine: largest input")
    x.add_argument("--cache-dir", help="engine cache (default: RTSEG_ENGINE_CACHE or ~/.cache/rtseg/engines)")
    x.add_argument("--calib-data", help="int8: CamVid-layout root (its train/ is used) or a folder of frames")
    x.add_argument("--calib-images", type=_count, default=60, help="int8: calibration images (spread over the folder)")
    x.add_argument("--calib-method", choices=["minmax", "entropy", "percentile"], default="minmax")
    x.add_argument("--qdq", choices=["cpu", "tensorrt"], default="cpu",
                   help="int8 ONNX layout: cpu (uint8 activations, ONNX Runtime's fastest; NAME-int8) or tensorrt "
                        "(symmetric int8, float biases: what TensorRT's INT8 engines need; NAME-int8-trt)")
    x.add_argument("--gate-data", help="int8: CamVid-layout root whose val split the gate measures (default: --calib-data)")
    x.add_argument("--max-drop", type=float, default=1.0, help="int8: largest val mIoU loss accepted, in points")
    x.add_argument("--force", action="store_true", help="int8: ship even if the gate fails")
    x.add_argument("--name", help="model name (default: derived from the architecture)")
    x.add_argument("--out-dir", help="where the .onnx goes (default: the package's engines/)")
    x.add_argument("--manifest", help="manifest to update (default: engines/manifest.json)")
    x.add_argument("--no-manifest", action="store_true")
    x.add_argument("--set-default", action="store_true", help="make it the default model")
    x.add_argument("--trained-on", help="override the recorded training machine")
    x.add_argument("--note", help="a remark kept with the training record (e.g. which checkpoint this is)")
    x.set_defaults(func=cmd_export)

    im = _command(sub, "import", "your own segmentation model (.tflite DeepLab or .onnx) as an rtseg model")
    im.add_argument("file", help="a TFLite DeepLabV3-MobileNetV2 file, or an ONNX model with an NCHW image input "
                                 "and class logits or class ids")
    im.add_argument("--name", help="model name (default: the file's stem)")
    im.add_argument("--labels", help="class names, one a line (default: PASCAL VOC's for 21-class DeepLab files)")
    im.add_argument("--palette", help="class colours, one 'R G B' a line (default: PASCAL VOC's colour map)")
    im.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"),
                    help="input mean, 0..1 (default: (q-128)/128 for TFLite files, ImageNet's for ONNX)")
    im.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="input std, 0..1 (default: as --mean)")
    im.add_argument("--input-size", type=_size, help="HxW to run at (default: the file's own)")
    im.add_argument("--force", action="store_true", help="replace an imported model of the same name")
    im.set_defaults(func=cmd_import)

    m = _command(sub, "models", "list the shipped and imported models")
    m.add_argument("name", nargs="?", help="one model: its class ids, names and colours")
    m.add_argument("--pareto", action="store_true", help="FPS vs accuracy on this machine, Pareto front marked")
    m.add_argument("--task", type=normalize_task, choices=TASKS, default="seg")
    m.add_argument("--rank-by", choices=["auto", "heldout", "val"], default="auto",
                   help="with --pareto: the accuracy to rank by (auto: the held-out drive when the zoo has it)")
    m.set_defaults(func=cmd_models)

    b = _command(sub, "bench", "FPS and mIoU of models x backends, beside the alternatives; tables and a plot")
    b.add_argument("--models", default=None,
                   help="all (the default), or NAME,NAME,...; with --quick: the default and the fastest Pareto model")
    b.add_argument("--backends", default=None,
                   help=f"comma-separated (onnxruntime, torch; default {BENCH_BACKENDS}, with --quick onnxruntime)")
    b.add_argument("--data", help="CamVid-layout folder to measure accuracy on (default: the manifest's numbers)")
    b.add_argument("--split", default="val")
    b.add_argument("--video", default=str(Path(__file__).resolve().parent.parent / "examples" / "camvid_0016E5.mp4"))
    b.add_argument("--frames", type=_count, default=300, help="end-to-end frames per run")
    b.add_argument("--iters", type=_count, default=100, help="model-only inferences per repetition")
    b.add_argument("--reps", type=_count, default=3, help="model-only repetitions (median)")
    b.add_argument("--no-peers", action="store_true", help="skip torchvision's models")
    b.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    b.add_argument("--keyframes", metavar="N,N,auto",
                   help="also measure each segmentation model on every Nth frame with optical flow between (rtseg run "
                        "--keyframe N): FPS, and with --data the mIoU of the split run as a sequence")
    b.add_argument("--quick", action="store_true",
                   help="a short run: the default and the fastest Pareto model on ONNX Runtime beside the naive loop, "
                        "1 x 20 inferences, 60 frames, 20 val images")
    b.add_argument("--out", default="bench-results")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)

    pr = _command(sub, "profile", "measure every shipped model's speed on this machine (cached)")
    add_backend_args(pr)
    pr.add_argument("--models", default="all", help="all, or NAME,NAME,...")
    pr.add_argument("--streams", type=_count, default=None)
    pr.add_argument("--threads", type=_count, default=None)
    pr.add_argument("--live", action="store_true", help="profile the live-source layout (one stream, all cores)")
    pr.add_argument("--frames", type=_count, default=60)
    pr.add_argument("--force", action="store_true", help="measure again even if cached")
    pr.set_defaults(func=cmd_profile)

    ba = _command(sub, "batch", "segment many video files in parallel on Ray workers, resumably")
    ba.add_argument("videos", nargs="+", help="video files, folders of videos, or globs ('videos/*.mp4', quoted: "
                                              "rtseg expands it, ** included)")
    ba.add_argument("--out", required=True, metavar="DIR",
                    help="folder for every video's outputs: NAME.mp4 (overlay), NAME.jsonl, NAME.masks/ and "
                         "NAME.done.json, written when the video is complete; it may not hold the inputs")
    which = ba.add_mutually_exclusive_group()
    which.add_argument("--model", help="shipped model name or path to an .onnx file (default: the manifest's default)")
    which.add_argument("--target-fps", type=_positive_float,
                       help="the most accurate model that holds this rate on one worker here, chosen once for the batch")
    where = ba.add_mutually_exclusive_group()
    where.add_argument("--ray-address", metavar="auto|ADDR",
                       help="an existing Ray cluster (auto: the one `ray start` runs here; ADDR: its head's host:port), "
                            "which sees the videos and DIR at the same paths (default: a local cluster for this batch)")
    where.add_argument("--no-ray", action="store_true",
                       help="one video at a time in this process, every core on it (what runs when Ray is not installed)")
    ba.add_argument("--workers", type=_count, metavar="N",
                    help="videos at once: a Ray actor each, with one CPU and one inference thread (default: every core "
                         "here, or every CPU of the --ray-address cluster)")
    ba.add_argument("--retries", type=lambda t: _whole(t, 0), default=2, metavar="N",
                    help="new attempts, on another worker, for a video whose worker died")
    ba.add_argument("--json", action="store_true", help="also write NAME.jsonl: one JSON line per frame")
    ba.add_argument("--save-masks", action="store_true", help="also write NAME.masks/: one PNG class-id map per frame")
    ba.add_argument("--quiet", action="store_true",
                    help="no progress bar and no progress messages (the table, warnings and errors are still printed)")
    ba.set_defaults(func=cmd_batch)

    sv = _command(sub, "serve", "watch many live cameras through one server, spread over Ray workers")
    sv.add_argument("--streams", required=True, metavar="FILE",
                    help="the cameras: a .txt list (one URI per line, 'LABEL = URI' to name one) or a .toml list "
                         "([[source]] uri = ..., label = ...)")
    sv.add_argument("--listen", default="127.0.0.1:8080", metavar="[HOST:]PORT",
                    help="where the pages are served: a grid of every camera at /, each at /<label>/, the numbers "
                         "at /stats.json (a bare PORT binds 127.0.0.1; 0.0.0.0:PORT or [::]:PORT opens it to the "
                         "network, behind a token printed as a URL once, unless --serve-token gives it)")
    sv.add_argument("--serve-token", metavar="TOKEN",
                    help="the token the pages ask for (default: $RTSEG_SERVE_TOKEN; else none on loopback, one "
                         "made for the run beyond it): ?token= once, then a cookie, or 'Authorization: Bearer TOKEN'")
    sv.add_argument("--serve-allow-host", metavar="NAME", action="append", default=[],
                    help="a name, beyond this machine's and the bound address, that browsers may reach the pages by "
                         "(repeatable; '*': any); other Host headers are refused against DNS rebinding")
    which = sv.add_mutually_exclusive_group()
    which.add_argument("--model", help="shipped model name or path to an .onnx file (default: the manifest's default)")
    which.add_argument("--target-fps", type=_positive_float,
                       help="every camera at this rate: each worker runs the most accurate model that holds it for all "
                            "its cameras together")
    add_backend_args(sv)
    sv.add_argument("--task", type=normalize_task, choices=TASKS, default="seg", help="with --target-fps: what the model must do")
    sv.add_argument("--no-adapt", action="store_true", help="with --target-fps: choose once, never switch")
    sv.add_argument("--rank-by", choices=["auto", "heldout", "val"], default="auto",
                    help="with --target-fps: the accuracy that ranks the models (as in rtseg run)")
    sv.add_argument("--input-size", type=_size, help="run the model at HxW instead of its native size")
    sv.add_argument("--alpha", type=_alpha, default=0.5, help="overlay opacity, 0..1 (default 0.5)")
    sv.add_argument("--legend", action="store_true", help="draw the class colour legend on the overlay")
    sv.add_argument("--reconnect", type=_reconnect, default=None, metavar="N|forever",
                    help="a camera that drops is reopened up to N times in a row, or forever (default: forever)")
    where = sv.add_mutually_exclusive_group()
    where.add_argument("--ray-address", metavar="auto|ADDR",
                       help="an existing Ray cluster (auto: the one `ray start` runs here; ADDR: its head's host:port) "
                            "(default: a local cluster for this command)")
    where.add_argument("--no-ray", action="store_true", help="every camera in this process (what runs without Ray)")
    sv.add_argument("--workers", type=_count, metavar="N",
                    help="camera workers (Ray actors), the cameras dealt out between them (default: one per "
                         "--cpus-per-worker CPUs, at most one per camera)")
    sv.add_argument("--cpus-per-worker", type=_count, default=1, metavar="N",
                    help="CPUs each worker takes, shared by its cameras' inference threads")
    sv.add_argument("--max-restarts", type=lambda t: _whole(t, -1), default=-1, metavar="N",
                    help="Ray restarts a worker that died, with its cameras, up to N times (-1: forever)")
    sv.add_argument("--view-fps", type=_positive_float, default=15.0, help="each camera's live view, at most this rate")
    sv.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
    sv.add_argument("--stats", metavar="FILE", help="write every camera's last numbers as JSON when it stops")
    sv.add_argument("--quiet", action="store_true", help="only warnings and errors")
    sv.set_defaults(func=cmd_serve)
    return p


class _CommandHandler(logging.StreamHandler):
    """The handler `configure_logging` installs (a class of its own, so it can find and replace it)."""


def configure_logging(quiet: bool = False) -> None:
    """What rtseg says goes to stderr, one plain line per message; --quiet keeps only warnings and errors.
    Calling it again replaces the handler it installed, so messages are never doubled."""
    logger = logging.getLogger("rtseg")
    for h in [h for h in logger.handlers if isinstance(h, _CommandHandler)]:
        logger.removeHandler(h)
    handler = _CommandHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False  # the command owns the terminal: a root handler would print each line twice


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        configure_logging(quiet=getattr(args, "quiet", False))  # only run, eval and bench have --quiet
        return args.func(args)
    except RtsegError as e:
        log.error(f"rtseg: error: {e}")
        return 1
    except KeyboardInterrupt:
        log.error("rtseg: interrupted")
        return 130
    except ModuleNotFoundError as e:  # the runtime install has no PyTorch; training and export need it
        if e.name not in ("torch", "torchvision", "onnx", "matplotlib", "pycocotools", "tflite"):
            raise
        log.error(f"rtseg: error: {getattr(args, 'command', 'this command')} needs {e.name}: pip install 'rtseg[train]'")
        return 1
    except BrokenPipeError:  # `rtseg models | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
