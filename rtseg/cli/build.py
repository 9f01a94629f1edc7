"""`rtseg train`, `rtseg export` and `rtseg bench`: making models and measuring them (PyTorch for the first two)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import RtsegError
from .evaluate import recorded_command
from .models import requested_models
from .types import keyframe_interval

if TYPE_CHECKING:
    from ..training.engine_export import EngineRequest

log = logging.getLogger(__name__)


# -- rtseg train / export / models -----------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    """`rtseg train` (its arguments are read by training.train_args)."""
    from ..training.train import train

    out = train(args)
    print(f"done: {out / 'best.pt'} (best val mIoU), {out / 'log.csv'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`rtseg export`: FP32 ONNX from a checkpoint, an INT8 sibling of a shipped model, or a TensorRT engine."""
    from ..core.modelinfo import ENGINES_DIR, MANIFEST

    out_dir = Path(args.out_dir) if args.out_dir else ENGINES_DIR
    manifest = None if args.no_manifest else (Path(args.manifest) if args.manifest else MANIFEST)
    if args.format == "engine":
        if not args.model:
            raise RtsegError("--format engine needs --model NAME|PATH (a shipped FP32 ONNX model)")
        from ..training.engine_export import EngineRequest

        return export_trt_engine(
            EngineRequest(
                args.model,
                args.precision,
                args.min_shape,
                args.opt_shape,
                args.max_shape,
                cache_dir=args.cache_dir,
                calib_data=args.calib_data,
                calib_images=args.calib_images,
                gate_data=args.gate_data,
                max_drop=args.max_drop,
                force=args.force,
            )
        )
    if args.precision == "fp16":
        raise RtsegError("--precision fp16 is for TensorRT engines (--format engine); ONNX files ship FP32 or INT8")
    if args.precision == "int8":
        if not args.model:
            raise RtsegError("--precision int8 needs --model NAME (a shipped FP32 model)")
        if not args.calib_data:
            raise RtsegError("--precision int8 needs --calib-data DIR (CamVid-layout root or a folder of frames)")
        from ..training.int8_export import Int8Request, export_int8

        export_int8(
            Int8Request(
                args.model,
                args.calib_data,
                out_dir,
                manifest,
                args.name,
                args.calib_images,
                args.calib_method,
                args.gate_data,
                args.max_drop,
                args.force,
                args.qdq,
                recorded_command(),
            )
        )
        return 0
    if not args.checkpoint:
        raise RtsegError("export needs --checkpoint (FP32 ONNX from training) or --model NAME --precision int8")
    from ..training.export import ExportRequest, export_checkpoint

    entry = export_checkpoint(
        ExportRequest(
            Path(args.checkpoint),
            out_dir,
            name=args.name,
            manifest_path=manifest,
            set_default=args.set_default,
            trained_on=args.trained_on,
            note=args.note,
        )
    )
    print(
        f"wrote {out_dir / entry['file']} ({entry['params'] / 1e6:.2f} M params, {entry['gflops']:.2f} GFLOPs at "
        f"{entry['input_size'][0]}x{entry['input_size'][1]})" + (f" and its entry in {manifest}" if manifest else "")
    )
    print(f"next: rtseg eval --model {entry['name']} --data DIR --split val --update-manifest")
    return 0


def export_trt_engine(request: EngineRequest) -> int:
    """Build (or reuse) a TensorRT engine for an `EngineRequest` and say where it is."""
    from ..training.engine_export import export_engine

    r = export_engine(request)
    print(f"engine: {r['engine']} ({r['precision']}, {r['profile']}, {r['megabytes']} MB)")
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
    keyframes: tuple = ()  # KeyFrames settings each model is also measured with

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchRequest:
        length = (
            dict(iters=20, reps=1, frames=min(args.frames, 60), eval_images=20)
            if args.quick
            else dict(iters=args.iters, reps=args.reps, frames=args.frames, eval_images=None)
        )
        # --quick without --models/--backends: the default and the fastest model on ONNX Runtime, and the naive loop
        backends, peers = args.backends or ("onnxruntime" if args.quick else BENCH_BACKENDS), not args.no_peers
        if args.quick and args.models is None:
            peers = False
        try:
            keyframes = tuple(keyframe_interval(k) for k in args.keyframes.split(",")) if args.keyframes else ()
        except argparse.ArgumentTypeError as e:
            raise RtsegError(f"--keyframes: {e}") from None
        models = args.models or ("quick" if args.quick else "all")
        return cls(
            models,
            tuple(backends.split(",")),
            args.video,
            Path(args.out),
            args.data,
            args.split,
            peers=peers,
            naive=not args.no_naive,
            quiet=args.quiet,
            keyframes=keyframes,
            **length,
        )


BENCH_BACKENDS = "onnxruntime,torch"


def cmd_bench(args: argparse.Namespace) -> int:
    """`rtseg bench`: models x backends beside the alternatives; tables and a plot in --out."""
    from ..evaluation.bench import run_bench, write_results

    request = BenchRequest.from_args(args)
    if request.models == "quick":
        from ..selection.start import quick_bench_models

        infos = quick_bench_models()
    else:
        infos = requested_models(request.models)
    if not infos:
        raise RtsegError("no models to benchmark")
    backends, peers, naive = list(request.backends), request.peers, request.naive
    if not _importable("torch"):  # the runtime install: measure what it can, say what it leaves out, up front
        skipped = [
            what
            for what, on in (
                ("the torch backend", "torch" in backends),
                ("torchvision's peer models", peers),
                ("the naive PyTorch loop", naive),
            )
            if on
        ]
        if skipped:
            log.warning(
                f"rtseg: bench: PyTorch is not installed, so {', '.join(skipped)} will not be measured "
                "(pip install 'rtseg[train]' for them)"
            )
        backends, peers, naive = [b for b in backends if b != "torch"], False, False
        if not backends:
            raise RtsegError("--backends: nothing left to measure without PyTorch")
    if request.data and any(i.task != "seg" for i in infos) and not _importable("pycocotools"):
        raise RtsegError("box models' AP needs pycocotools: pip install 'rtseg[eval]' (or --models with seg models only)")
    rows, env = run_bench(
        infos,
        backends,
        data=request.data,
        split=request.split,
        video=request.video,
        frames=request.frames,
        iters=request.iters,
        reps=request.reps,
        peers=peers,
        naive=naive,
        eval_images=request.eval_images,
        progress=not request.quiet,
        keyframes=request.keyframes,
    )
    out = request.out
    write_results(rows, env, out, recorded_command("rtseg bench") or "rtseg bench")
    print((out / "bench.md").read_text())
    print(f"wrote {out}/bench.md, bench.csv, bench.json" + (", bench.png" if (out / "bench.png").exists() else ""))
    return 0


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a module hidden or broken (sys.modules[name] = None)
        return False
