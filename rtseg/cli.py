"""The `rtseg` command: run, eval, train, export, models, profile, bench."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .core.errors import RtsegError
from .runtime.pipeline import inference_layout


def _positive_float(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


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


def resolve_backend_arg(args: argparse.Namespace) -> str | None:
    """`--backend auto` becomes a concrete backend here, once; returns why (to say once the model loaded)."""
    from .backends.choice import resolve_backend

    args.backend, why = resolve_backend(args.backend)
    return why


def backend_options(args: argparse.Namespace) -> dict:
    return {"precision": args.precision} if args.backend == "tensorrt" else {}


# -- rtseg run ---------------------------------------------------------------------------------------
def build_sinks(args: argparse.Namespace, source, info, request_stop) -> list:
    from .runtime.sinks import IMAGE_SUFFIXES, ImageSink, JsonLinesSink, MaskSink, VideoSink, WindowSink, display_available

    sinks = []
    if args.output:
        out = Path(args.output)
        if out.suffix.lower() in IMAGE_SUFFIXES:
            sinks.append(ImageSink(out, single=source.frame_count == 1))
        else:
            size = source.frame_size or (info.input_size[1], info.input_size[0])
            sinks.append(VideoSink(out, source.fps or 30.0, size))
    if args.save_masks:
        if info.task == "det":
            raise RtsegError(f"--save-masks: model {info.name} predicts boxes only, it has no class map")
        sinks.append(MaskSink(args.save_masks))
    if not args.no_show:
        if display_available():
            try:
                sinks.append(WindowSink(f"rtseg - {info.name}", request_stop))
            except Exception as e:  # OpenCV built without GUI support, display refused...
                print(f"rtseg: no window ({e.__class__.__name__}); running headless", file=sys.stderr)
        elif not args.quiet:
            print("rtseg: no display found; running headless (--no-show)", file=sys.stderr)
    if args.json:
        sinks.append(JsonLinesSink(args.json, info.classes, info.det_classes))  # last: its line includes the other sinks' time
    return sinks


def shipped_models() -> list:
    from .core.modelinfo import load_manifest, resolve_model

    return [resolve_model(m["name"]) for m in load_manifest().get("models", [])]


def models_for_task(task: str) -> list:
    """The shipped models measured for `task`: only these are profiled (a box model never serves seg)."""
    from .core.modelinfo import measured_sizes
    from .selection.selector import accuracy_of

    return [i for i in shipped_models() if any(accuracy_of(i, task, size) is not None for size in measured_sizes(i))]


def select_model(args: argparse.Namespace, streams: int, threads: int, say) -> tuple:
    """--target-fps without --model: profile (once per machine), then the most accurate model that holds it."""
    from .selection.profiling import ensure_profiles
    from .selection.selector import build_candidates, choose, pareto_front

    infos = models_for_task(args.task)
    profiles = ensure_profiles(infos, args.backend, streams, threads, say=say)
    candidates = build_candidates(infos, profiles, args.task)
    if not candidates:
        raise RtsegError(f"no shipped model can do --task {args.task} with a measured val accuracy")
    if args.max_latency:
        within = [c for c in candidates if c.latency_ms <= args.max_latency]
        candidates = within or candidates
    choice, why = choose(candidates, args.target_fps, args.margin, args.max_latency)
    say(f"rtseg: selector: {why}")
    ladder = pareto_front(candidates)
    if choice not in ladder:  # only when the latency bound removed a faster model: keep the choice reachable
        ladder = sorted(set(ladder) | {choice}, key=lambda c: -c.fps)
    return choice, ladder, ladder.index(choice)


def cmd_run(args) -> int:
    from .core.modelinfo import resolve_model
    from .runtime.pipeline import Pipeline
    from .runtime.slot import load_slot
    from .runtime.sources import LimitedSource, LoopedSource, PacedSource, open_camera, open_source

    if (args.source is None) == (args.camera is None):
        raise RtsegError("give either a SOURCE or --camera N")
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    source = open_camera(args.camera) if args.camera is not None else open_source(args.source)
    if args.loop > 1:
        if source.live:
            raise RtsegError("--loop applies to files and images, not to live sources")
        source.close()
        source = LoopedSource(lambda: open_source(args.source), args.loop)
    if args.frames:
        source = LimitedSource(source, args.frames)
    if args.realtime and not source.live:
        source = PacedSource(source)
    streams, threads = inference_layout(args.streams, args.threads, source.live)
    why_backend = resolve_backend_arg(args)
    ladder, size = None, args.input_size
    if args.target_fps and not args.model:
        choice, ladder, index = select_model(args, streams, threads, say)
        info, size = choice.info, choice.input_size
    else:
        info = resolve_model(args.model)

    def load(i, input_size):
        return load_slot(i, args.backend, threads, input_size, args.alpha, args.score_threshold,
                         pool_size=args.queue_size + streams + 2, **backend_options(args))

    slot = load(info, size)
    pipeline: Pipeline | None = None
    sinks = build_sinks(args, source, info, lambda: pipeline and pipeline.stop())
    if not sinks:
        say("rtseg: nothing to show or save (no window, --output, --save-masks or --json): measuring throughput only")
    pipeline = Pipeline(source, slot, sinks, queue_size=args.queue_size, streams=streams, progress=not args.quiet)
    runner = None
    if ladder and len(ladder) > 1 and not args.no_adapt:
        from .selection.adaptive import AdaptiveRunner
        from .selection.selector import Controller

        runner = AdaptiveRunner(pipeline, Controller(ladder, index, args.target_fps), lambda c: load(c.info, c.input_size),
                                live=source.live, streams=streams, say=say)
        pipeline.on_frame = runner.on_frame
    kind = "live" if source.live else f"{source.frame_count or '?'} frames"
    if why_backend:
        say(f"rtseg: backend auto: {why_backend}")
    say(f"rtseg: {slot.name} ({slot.pre.height}x{slot.pre.width}, {slot.backend.name}, {streams} stream(s) x "
        f"{threads} thread(s)) on {source.name} ({kind})")
    stats = pipeline.run()
    if runner:
        stats.switches = runner.switches
    say(stats.summary())
    if args.target_fps:
        verdict = "met" if stats.fps >= args.target_fps else "NOT met"
        say(f"target {args.target_fps:g} FPS {verdict} ({stats.fps:.1f} FPS)")
    if stats.skipped_inputs:
        say(f"unreadable inputs skipped: {', '.join(stats.skipped_inputs[:5])}" + (" ..." if len(stats.skipped_inputs) > 5 else ""))
    if args.stats:
        d = stats.to_dict() | {"model": slot.name, "backend": slot.backend.name, "input_size": [slot.pre.height, slot.pre.width],
                               "source": source.name, "streams": streams, "threads": threads, "target_fps": args.target_fps}
        Path(args.stats).write_text(json.dumps(d, indent=2) + "\n")
    # like a shell: 128 + signal number when Ctrl-C (130) or SIGTERM (143) stopped the run
    return 128 + pipeline.stop_signal if pipeline.stop_signal else 0


def cmd_profile(args) -> int:
    from .core.modelinfo import resolve_model
    from .selection.profiling import ensure_profiles, machine_key

    streams, threads = inference_layout(args.streams, args.threads, live=args.live)
    why_backend = resolve_backend_arg(args)
    if why_backend:
        print(f"backend auto: {why_backend}")
    infos = shipped_models() if args.models == "all" else [resolve_model(n) for n in args.models.split(",")]
    profiles = ensure_profiles(infos, args.backend, streams, threads, force=args.force, frames=args.frames)
    print(f"machine: {machine_key(args.backend, streams, threads)}")
    print(f"{'model':<34}{'model FPS':>10}{'p50 ms':>8}{'p95 ms':>8}{'e2e FPS':>9}{'p50 ms':>8}{'p95 ms':>8}")
    for p in profiles.values():
        print(f"{p.model:<34}{p.model_fps:>10.1f}{p.model_ms_p50:>8.1f}{p.model_ms_p95:>8.1f}"
              f"{p.e2e_fps:>9.1f}{p.e2e_ms_p50:>8.1f}{p.e2e_ms_p95:>8.1f}")
    return 0


# -- rtseg eval --------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    from .evaluation.evaluate import evaluate, format_report
    from .core.modelinfo import MANIFEST, load_manifest, metrics_key, resolve_model, save_manifest
    from .runtime.slot import load_slot

    info = resolve_model(args.model)
    why_backend = resolve_backend_arg(args)
    slot = load_slot(info, args.backend, args.threads, args.input_size, **backend_options(args))
    if why_backend and not args.quiet:
        print(f"rtseg: backend auto: {why_backend}", file=sys.stderr)
    report = evaluate(slot, args.data, args.split, args.task, progress=not args.quiet)
    slot.close()
    trained_with = info.entry.get("training", {}).get("val_split", "val")
    if args.split.startswith("holdout:") and trained_with != args.split:
        # this drive was in the model's training data: the number is not a held-out measurement
        report["warning"] = (f"{info.name} was trained with --val-split {trained_with}: drive "
                             f"{args.split.split(':', 1)[1]} was in its training data")
    report["command"] = "rtseg " + " ".join(sys.argv[1:] if argv_is_rtseg() else [])
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.update_manifest:
        manifest = load_manifest()
        entry = next((m for m in manifest.get("models", []) if m["name"] == args.model), None)
        if entry is None:
            raise RtsegError(f"--update-manifest needs a model name from {MANIFEST}, got {args.model!r}")
        keep = ("miou", "pixel_accuracy", "per_class_iou", "detection", "images", "input_size", "backend", "machine",
                "date", "split_note", "warning")
        key = metrics_key(args.split, args.input_size, info)
        entry.setdefault("metrics", {})[key] = {k: report[k] for k in keep if k in report} | {
            "command": f"rtseg eval --model {args.model} --data {args.data} --split {args.split}"
                       + (f" --task {args.task}" if args.task else "")
                       + (f" --input-size {args.input_size[0]}x{args.input_size[1]}" if key != f"camvid_{args.split}" else "")}
        save_manifest(manifest)
        print(f"updated {MANIFEST}: {args.model} {key}")
    return 0


def argv_is_rtseg() -> bool:
    return Path(sys.argv[0]).name in ("rtseg", "__main__.py")


# -- rtseg train / export / models -----------------------------------------------------------------
def cmd_train(args) -> int:
    from .training.train import train

    out = train(args)
    print(f"done: {out / 'best.pt'} (best val mIoU), {out / 'log.csv'}")
    return 0


def cmd_export(args) -> int:
    from .core.modelinfo import ENGINES_DIR, MANIFEST

    out_dir = Path(args.out_dir) if args.out_dir else ENGINES_DIR
    manifest = None if args.no_manifest else (Path(args.manifest) if args.manifest else MANIFEST)
    if args.format == "engine":
        return export_trt_engine(args)
    if args.precision == "fp16":
        raise RtsegError("--precision fp16 is for TensorRT engines (--format engine); ONNX files ship FP32 or INT8")
    if args.precision == "int8":
        return export_int8(args, out_dir, manifest)
    if not args.checkpoint:
        raise RtsegError("export needs --checkpoint (FP32 ONNX from training) or --model NAME --precision int8")
    from .training.export import export_checkpoint

    entry = export_checkpoint(args.checkpoint, out_dir, args.name, manifest, args.set_default, args.trained_on, args.note)
    print(f"wrote {out_dir / entry['file']} ({entry['params'] / 1e6:.2f} M params, {entry['gflops']:.2f} GFLOPs at "
          f"{entry['input_size'][0]}x{entry['input_size'][1]})" + (f" and its entry in {manifest}" if manifest else ""))
    print(f"next: rtseg eval --model {entry['name']} --data DIR --split val --update-manifest")
    return 0


def export_trt_engine(args) -> int:
    from .training.engine_export import export_engine

    if not args.model:
        raise RtsegError("--format engine needs --model NAME|PATH (a shipped FP32 ONNX model)")
    r = export_engine(args.model, args.precision, (args.min_shape, args.opt_shape, args.max_shape), args.cache_dir,
                      args.calib_data, args.calib_images, args.gate_data, args.max_drop, args.force)
    print(f"engine: {r['engine']} ({r['precision']}, {r['profile']}, {r['megabytes']} MB)")
    return 0


def export_int8(args, out_dir: Path, manifest_path: Path | None) -> int:
    """INT8 sibling of a shipped FP32 model, kept only if the accuracy gate passes."""
    from .evaluation.evaluate import evaluate
    from .core.modelinfo import load_manifest, resolve_model, save_manifest, sha256
    from .runtime.slot import load_slot
    from .training.quantize import calibration_images, gate, quantize_int8

    if not args.model:
        raise RtsegError("--precision int8 needs --model NAME (a shipped FP32 model)")
    if not args.calib_data:
        raise RtsegError("--precision int8 needs --calib-data DIR (CamVid-layout root or a folder of frames)")
    info = resolve_model(args.model)
    name = args.name or f"{info.name}-int8"
    output = out_dir / f"{name}.onnx"
    images = calibration_images(args.calib_data, args.calib_images)
    print(f"calibrating {info.name} on {len(images)} images ({args.calib_method})")
    quantize_int8(info, output, images, args.calib_method)
    int8 = resolve_model(str(output))
    gate_data = args.gate_data or args.calib_data
    reports = {p: evaluate(load_slot(i, "onnxruntime"), gate_data, "val", progress=False)
               for p, i in (("fp32", info), ("int8", int8))}
    ok, message = gate(reports["fp32"]["miou"], reports["int8"]["miou"], args.max_drop)
    print(f"accuracy gate: {message}")
    if not ok and not args.force:
        output.unlink()
        raise RtsegError(f"INT8 refused: {message}; keep FP32, or pass --force to ship it anyway")
    if manifest_path is not None:
        manifest = load_manifest(manifest_path)
        base = next((m for m in manifest["models"] if m["name"] == info.name), info.entry)
        entry = {**{k: v for k, v in base.items() if k not in ("metrics", "weights")}, "name": name, "file": output.name,
                 "precision": "int8", "base_model": info.name, "sha256": sha256(output),
                 "quantization": {"method": f"ONNX Runtime static QDQ, per-channel, {args.calib_method} calibration",
                                  "calibration_images": len(images), "gate": message,
                                  "command": "rtseg " + " ".join(sys.argv[1:]) if argv_is_rtseg() else None},
                 "metrics": {}}
        r = reports["int8"]
        entry["metrics"]["camvid_val"] = {k: r[k] for k in ("miou", "pixel_accuracy", "per_class_iou", "images",
                                                              "input_size", "backend", "machine", "date")} | {
            "command": f"rtseg eval --model {name} --data {gate_data} --split val"}
        manifest["models"] = [m for m in manifest["models"] if m["name"] != name] + [entry]
        save_manifest(manifest, manifest_path)
    print(f"wrote {output}" + (f" and its entry in {manifest_path}" if manifest_path else ""))
    return 0


def cmd_models(args) -> int:
    from .core.modelinfo import MANIFEST, load_manifest

    if args.pareto:
        return print_pareto(args)
    manifest = load_manifest()
    models = manifest.get("models", [])
    if not models:
        print(f"no models in {MANIFEST}")
        return 0
    print(f"{'':2}{'name':<36}{'task':<7}{'prec':<5}{'input':>9}{'params':>9}{'GFLOPs':>8}{'val mIoU':>10}  trained")
    for m in models:
        miou = m.get("metrics", {}).get("camvid_val", {}).get("miou")
        t = m.get("training", {})
        star = "* " if m["name"] == manifest.get("default") else "  "
        print(f"{star}{m['name']:<36}{m['task']:<7}{m.get('precision', 'fp32'):<5}{m['input_size'][0]:>4}x{m['input_size'][1]:<4}"
              f"{m['params'] / 1e6:>8.2f}M{m['gflops']:>8.2f}{'' if miou is None else f'{100 * miou:.1f}':>10}  "
              f"{t.get('epochs', '?')} epochs, {t.get('wall_hours', '?')} h on {t.get('trained_on', '?')}")
    print("* default model")
    return 0


def cmd_bench(args) -> int:
    from .evaluation.bench import run_bench, write_results
    from .core.modelinfo import resolve_model

    infos = shipped_models() if args.models == "all" else [resolve_model(n) for n in args.models.split(",")]
    if not infos:
        raise RtsegError("no models to benchmark")
    quick = dict(iters=20, reps=1, frames=min(args.frames, 60), eval_images=20) if args.quick else \
        dict(iters=args.iters, reps=args.reps, frames=args.frames, eval_images=None)
    rows, env = run_bench(infos, args.backends.split(","), args.data, args.split, args.video, peers=not args.no_peers,
                          naive=not args.no_naive, progress=not args.quiet, **quick)
    out = Path(args.out)
    write_results(rows, env, out, "rtseg " + " ".join(sys.argv[1:]) if argv_is_rtseg() else "rtseg bench")
    print((out / "bench.md").read_text())
    print(f"wrote {out}/bench.md, bench.csv, bench.json" + (", bench.png" if (out / "bench.png").exists() else ""))
    return 0


def print_pareto(args) -> int:
    from .selection.profiling import ensure_profiles
    from .selection.selector import build_candidates, pareto_front

    streams, threads = inference_layout(None, None, live=False)
    infos = models_for_task(args.task)
    candidates = build_candidates(infos, ensure_profiles(infos, "onnxruntime", streams, threads,
                                                         say=lambda m: print(m, file=sys.stderr)), args.task)
    front = {c.name for c in pareto_front(candidates)}
    metric = {"seg": "val mIoU", "det": "val mAP50", "both": "mean"}[args.task]
    print(f"{'':2}{'model':<34}{'e2e FPS':>9}{'p95 ms':>8}{metric:>10}")
    for c in sorted(candidates, key=lambda c: -c.fps):
        print(f"{'* ' if c.name in front else '  '}{c.name:<34}{c.fps:>9.1f}{c.latency_ms:>8.1f}{100 * c.accuracy:>10.1f}")
    print("* on the Pareto front (no other model is both faster and more accurate here)")
    return 0


def add_backend_args(p: argparse.ArgumentParser) -> None:
    from .backends import available_backends

    p.add_argument("--backend", default="auto", choices=available_backends(),
                   help="auto (default): TensorRT on an NVIDIA GPU when installed, else ONNX Runtime CUDA, else the CPU")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16",
                   help="TensorRT engine precision (default fp16; int8 needs an engine built by rtseg export)")


def build_parser() -> argparse.ArgumentParser:
    from .training.train_args import add_train_args

    p = argparse.ArgumentParser(prog="rtseg", description="Real-time video segmentation (MobileNetV2, ONNX Runtime, TensorRT)")
    p.add_argument("--version", action="version", version=f"rtseg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="segment a video, images, a stream or a camera, live")
    r.add_argument("source", nargs="?", help="video file, image, folder or glob of images, or rtsp:// / http:// URL")
    r.add_argument("--camera", type=int, metavar="N", help="camera index instead of SOURCE")
    r.add_argument("--model", help="shipped model name or path to an .onnx file (default: the manifest's default)")
    add_backend_args(r)
    r.add_argument("--streams", type=int, default=None,
                   help="frames inferred in parallel (default: one per core up to 4 for files, 1 for live sources)")
    r.add_argument("--threads", type=int, default=None, help="inference threads per stream (default: cores / streams)")
    r.add_argument("--input-size", type=_size, help="run the model at HxW instead of its native size")
    r.add_argument("--output", metavar="FILE", help="overlay video (.mp4/.avi/.mkv) or image (.png/.jpg)")
    r.add_argument("--save-masks", metavar="DIR", help="write one PNG class-id map per frame")
    r.add_argument("--json", metavar="FILE", help="write one JSON line per frame")
    r.add_argument("--stats", metavar="FILE", help="write the run summary as JSON")
    r.add_argument("--no-show", action="store_true", help="no window (automatic without a display)")
    r.add_argument("--alpha", type=_alpha, default=0.5, help="overlay opacity, 0..1 (default 0.5)")
    r.add_argument("--score-threshold", type=_alpha, default=0.3, help="boxes below this score are not shown (0..1)")
    r.add_argument("--target-fps", type=_positive_float,
                   help="without --model: run the most accurate model that holds this rate here, and keep it held")
    r.add_argument("--max-latency", type=_positive_float, metavar="MS", help="with --target-fps: p95 latency bound")
    r.add_argument("--task", choices=["seg", "det", "both"], default="seg", help="with --target-fps: what the model must do")
    r.add_argument("--margin", type=_positive_float, default=1.1, help="with --target-fps: speed margin at start (1.1)")
    r.add_argument("--no-adapt", action="store_true", help="with --target-fps: choose once, never switch")
    r.add_argument("--realtime", action="store_true", help="play a file at its own frame rate, like a camera")
    r.add_argument("--frames", type=int, metavar="N", help="stop after N frames")
    r.add_argument("--loop", type=int, default=1, metavar="N", help="play a file N times over")
    r.add_argument("--queue-size", type=int, default=2, help="frames buffered between stages (files)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("eval", help="per-class IoU and mIoU on a CamVid-layout split")
    e.add_argument("--model", help="shipped model name or path to an .onnx file")
    e.add_argument("--data", required=True, help="folder with <split>/ and <split>annot/")
    e.add_argument("--split", default="val", type=_split,
                   help="train, val, test, or holdout:DRIVE (every frame of one drive, e.g. holdout:0006R0) "
                        "(default: val)")
    e.add_argument("--task", choices=["seg", "det", "both"], help="what to measure (default: what the model predicts)")
    add_backend_args(e)
    e.add_argument("--threads", type=int, default=None)
    e.add_argument("--input-size", type=_size, help="evaluate at HxW instead of the model's size")
    e.add_argument("--json", metavar="FILE", help="write the results as JSON")
    e.add_argument("--update-manifest", action="store_true", help="record the result in engines/manifest.json")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser("train", help="train a MobileNetV2 segmentation model")
    add_train_args(t)
    t.set_defaults(func=cmd_train)

    x = sub.add_parser("export", help="export a trained checkpoint to ONNX and add it to the manifest")
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
    x.add_argument("--calib-images", type=int, default=60, help="int8: calibration images (spread over the folder)")
    x.add_argument("--calib-method", choices=["minmax", "entropy", "percentile"], default="minmax")
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

    m = sub.add_parser("models", help="list the shipped models")
    m.add_argument("--pareto", action="store_true", help="FPS vs accuracy on this machine, Pareto front marked")
    m.add_argument("--task", choices=["seg", "det", "both"], default="seg")
    m.set_defaults(func=cmd_models)

    b = sub.add_parser("bench", help="FPS and mIoU of models x backends, beside the alternatives; tables and a plot")
    b.add_argument("--models", default="all", help="all, or NAME,NAME,...")
    b.add_argument("--backends", default="onnxruntime,torch", help="comma-separated (onnxruntime, torch)")
    b.add_argument("--data", help="CamVid-layout folder to measure accuracy on (default: the manifest's numbers)")
    b.add_argument("--split", default="val")
    b.add_argument("--video", default=str(Path(__file__).resolve().parent.parent / "examples" / "camvid_0016E5.mp4"))
    b.add_argument("--frames", type=int, default=300, help="end-to-end frames per run")
    b.add_argument("--iters", type=int, default=100, help="model-only inferences per repetition")
    b.add_argument("--reps", type=int, default=3, help="model-only repetitions (median)")
    b.add_argument("--no-peers", action="store_true", help="skip torchvision's models")
    b.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    b.add_argument("--quick", action="store_true", help="a short run: 1 x 20 inferences, 60 frames, 20 val images")
    b.add_argument("--out", default="bench-results")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)

    pr = sub.add_parser("profile", help="measure every shipped model's speed on this machine (cached)")
    add_backend_args(pr)
    pr.add_argument("--models", default="all", help="all, or NAME,NAME,...")
    pr.add_argument("--streams", type=int, default=None)
    pr.add_argument("--threads", type=int, default=None)
    pr.add_argument("--live", action="store_true", help="profile the live-source layout (one stream, all cores)")
    pr.add_argument("--frames", type=int, default=60)
    pr.add_argument("--force", action="store_true", help="measure again even if cached")
    pr.set_defaults(func=cmd_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RtsegError as e:
        print(f"rtseg: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rtseg: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:  # the runtime install has no PyTorch; training and export need it
        if e.name not in ("torch", "torchvision", "onnx", "matplotlib", "pycocotools"):
            raise
        print(f"rtseg: error: {args.command} needs {e.name}: pip install 'rtseg[train]'", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
