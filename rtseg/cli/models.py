"""`rtseg models`, `rtseg profile` and `rtseg import`: what can be run here, how fast, and bringing your own."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.errors import RtsegError
from ..core.tasks import normalize_task
from .run import backend_choice


log = logging.getLogger(__name__)


def requested_models(models: str) -> list:
    """`--models all` (every shipped model) or NAME,NAME,..."""
    from ..core.modelinfo import resolve_model

    from ..selection.start import shipped_models

    return shipped_models() if models == "all" else [resolve_model(n) for n in models.split(",")]


def cmd_profile(args: argparse.Namespace) -> int:
    """`rtseg profile`: each model's speed on this machine (measured once, then cached), as a table."""
    from ..runtime.pipeline import inference_layout
    from ..selection.profiling import ensure_profiles, machine_key

    streams, threads = inference_layout(args.streams, args.threads, live=args.live)
    backend = backend_choice(args)
    if backend.why:
        print(f"backend auto: {backend.why}")
    infos = requested_models(args.models)
    profiles = ensure_profiles(infos, backend.name, streams, threads, force=args.force, frames=args.frames)
    print(f"machine: {machine_key(backend.name, streams, threads)}")
    print(
        f"{'model':<38}{'model FPS':>10}{'p50 ms':>8}{'p95 ms':>8}{'e2e FPS':>9}{'p50 ms':>8}{'p95 ms':>8}"
        f"  {'kind':<9}{'others':>7}  measured"
    )
    for p in profiles.values():
        others = "?" if p.others_load is None else f"{100 * p.others_load:.0f}%" + ("!" if p.busy else "")
        print(
            f"{p.model:<38}{p.model_fps:>10.1f}{p.model_ms_p50:>8.1f}{p.model_ms_p95:>8.1f}"
            f"{p.e2e_fps:>9.1f}{p.e2e_ms_p50:>8.1f}{p.e2e_ms_p95:>8.1f}  {p.kind:<9}{others:>7}  {p.date}"
        )
    print(
        "kind: measured (full), scaled (first use: a reference speed times one probe's ratio here), estimate (a few "
        "inferences here), online (a run's own speed); others: share of "
        "the machine other programs used meanwhile (! busy: measured again next time)"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """`rtseg models`: the models as a table (`NAME`: one model's classes; `--pareto`: speed against accuracy here)."""
    from ..api.catalog import list_models
    from ..core.paths import user_manifest

    if args.pareto:
        return print_pareto(args.task, args.rank_by)
    cards = list_models()
    if not cards:
        from ..core.modelinfo import MANIFEST

        raise RtsegError(f"no models in {MANIFEST} or {user_manifest()}")
    if args.name:
        return print_model_classes(args.name)
    fps = measured_fps_here(cards)
    w = max(36, *(len(m.name) + 1 for m in cards))  # the longest name still leaves a space before its task
    print(f"{'':2}{'name':<{w}}{'task':<7}{'prec':<5}{'input':>9}{'params':>9}{'GFLOPs':>8}{'mIoU':>7}{'FPS here':>10}  classes; trained")
    # one accuracy column, its meaning said by the group: a held-out drive, or CamVid val (optimistic); the
    # held-out models first, most accurate first, so the older val figures never read as the better models
    held = sorted((m for m in cards if m.heldout_miou is not None), key=lambda m: -(m.heldout_miou or 0.0))
    groups = [
        (
            f"held out: mIoU on drive {str(held[0].heldout_split).split(':', 1)[1]}, which no frame of theirs trained on" if held else "",
            held,
        ),
        (
            "selected on CamVid val: mIoU on drive 0016E5, optimistic (neighbouring frames of that drive trained them)",
            [m for m in cards if m.heldout_miou is None and m.val_miou is not None],
        ),
        (
            "no segmentation figure (box models: rtseg eval --task det; imported models: rtseg eval)",
            [m for m in cards if m.heldout_miou is None and m.val_miou is None],
        ),
    ]
    for title, members in groups:
        if not members:
            continue
        print(f"  -- {title}")
        for m in members:
            params = f"{m.params / 1e6:>8.2f}M" if m.params else f"{'-':>9}"
            gflops = f"{m.gflops:>8.2f}" if m.gflops else f"{'-':>8}"
            miou = m.heldout_miou if m.heldout_miou is not None else m.val_miou
            here = f"{fps[m.name]:.0f}" if m.name in fps else "-"
            print(
                f"{'* ' if m.default else '  '}{m.name:<{w}}{m.task:<7}{m.precision:<5}"
                f"{m.input_size[0]:>4}x{m.input_size[1]:<4}{params}{gflops}"
                f"{'' if miou is None else f'{100 * miou:.1f}':>7}{here:>10}  "
                f"{len(m.classes)} ({', '.join(m.classes[:4])}{', ...' if len(m.classes) > 4 else ''}); {m.origin}"
            )
    print(
        "* default model; FPS here: end to end on this machine, as `rtseg profile` measured it (- until it has)"
        + (f"; imported models live in {user_manifest().parent}" if any(m.imported for m in cards) else "")
        + "; rtseg models NAME lists a model's classes and colours"
    )
    return 0


def measured_fps_here(cards) -> dict[str, float]:
    """End-to-end FPS of each model on this machine, from the speed profiles `rtseg profile` (and the selector)
    keep; only measured ones, read without measuring anything."""
    from ..backends.choice import resolve_backend
    from ..core.modelinfo import resolve_model
    from ..runtime.pipeline import inference_layout
    from ..selection.profiling import ProfileCache, machine_key

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
    from ..core.modelinfo import resolve_model

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
    from ..core.paths import user_manifest
    from ..training.importer import ImportRequest, import_model

    req = ImportRequest(
        Path(args.file),
        args.name,
        Path(args.labels) if args.labels else None,
        Path(args.palette) if args.palette else None,
        args.mean,
        args.std,
        args.input_size,
        args.force,
    )
    entry = import_model(req, user_manifest())
    print(
        f"imported {entry['name']}: {len(entry['classes'])} classes, input {entry['input_size'][0]}x"
        f"{entry['input_size'][1]}, in {user_manifest().parent / entry['file']}"
    )
    print(f"next: rtseg run --camera 0 --model {entry['name']}")
    return 0


def print_pareto(task: str, rank_by: str = "auto") -> int:
    """`rtseg models --pareto`: FPS against accuracy for `task` on this machine, the Pareto front marked."""
    from ..runtime.pipeline import inference_layout
    from ..selection.start import models_for_task
    from ..selection.profiling import ensure_profiles
    from ..selection.ladder import build_candidates, pareto_front

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
    print(
        f"* on the Pareto front (no other model is both faster and more accurate here); accuracy on {split}"
        + (" (drive-disjoint)" if where == "held-out" else " (optimistic: its drive trains the models)")
    )
    if any(c.keyframe > 1 for c in candidates):
        print(
            "/kfN: the model on every Nth frame, optical flow between; its accuracy less the drop that interval "
            "measured on the 15 Hz val sequence (rtseg eval --keyframe N)"
        )
    return 0
