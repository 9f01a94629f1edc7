"""The options of the tool commands: `rtseg eval`, `export`, `import`, `models`, `bench` and `profile` (`train`'s
are in training/train_args.py, beside the trainer that reads them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.tasks import TASKS, normalize_task
from .shared_options import add_backend_args, add_temporal_args
from .types import count, path_arg, size_hw, split_name
from .build import BENCH_BACKENDS


def add_eval_args(e: argparse.ArgumentParser) -> None:
    """`rtseg eval`: a split, the model, what to measure."""
    e.add_argument("--model", help="shipped model name or path to an .onnx file")
    e.add_argument("--data", required=True, help="folder with <split>/ and <split>annot/")
    e.add_argument(
        "--split",
        default="val",
        type=split_name,
        help="train, val, test, or holdout:DRIVE (every frame of one drive, e.g. holdout:0006R0) (default: val)",
    )
    e.add_argument("--task", type=normalize_task, choices=TASKS, help="what to measure (default: what the model predicts)")
    add_backend_args(e)
    e.add_argument("--threads", type=count, default=None)
    e.add_argument("--input-size", type=size_hw, help="evaluate at HxW instead of the model's size")
    e.add_argument("--json", metavar="FILE", type=path_arg, help="write the results as JSON")
    e.add_argument("--update-manifest", action="store_true", help="record the result in engines/manifest.json")
    e.add_argument(
        "--stress",
        action="store_true",
        help="measure on photometrically stressed copies of the split (brighter, darker, gamma 0.5 and "
        "2.0, blown highlights): what the INT8 gate checks besides the plain split",
    )
    add_temporal_args(
        e,
        None,
        "run the split as a sequence with the model on every Nth frame (propagated between), against every frame on the same frames",
        "run the split as a sequence with --smooth",
    )
    e.add_argument(
        "--class-map",
        metavar="NAME|FILE",
        help="merge the model's classes onto the data's before scoring: a JSON file {model class: "
        "data class}, every model class mapped, or a shipped mapping (cityscapes-to-camvid)",
    )
    e.add_argument("--quiet", action="store_true")


def add_export_args(x: argparse.ArgumentParser) -> None:
    """`rtseg export`: a checkpoint or a shipped model to ONNX, INT8 or a TensorRT engine."""
    x.add_argument("--checkpoint", help="best.pt or last.pt from rtseg train (FP32 ONNX export)")
    x.add_argument("--model", help="--precision int8 or --format engine: the shipped FP32 model to start from")
    x.add_argument(
        "--format",
        choices=["onnx", "engine"],
        default="onnx",
        help="onnx (default), or a TensorRT engine built here and cached (needs an NVIDIA GPU)",
    )
    x.add_argument(
        "--precision", choices=["fp32", "fp16", "int8"], default="fp32", help="fp32 | int8 for ONNX; fp32 | fp16 | int8 for engines"
    )
    x.add_argument("--min-shape", type=size_hw, metavar="HxW", help="engine: smallest input (default: the model's size)")
    x.add_argument("--opt-shape", type=size_hw, metavar="HxW", help="engine: the size TensorRT tunes for")
    x.add_argument("--max-shape", type=size_hw, metavar="HxW", help="engine: largest input")
    x.add_argument("--cache-dir", help="engine cache (default: RTSEG_ENGINE_CACHE or ~/.cache/rtseg/engines)")
    x.add_argument("--calib-data", help="int8: CamVid-layout root (its train/ is used) or a folder of frames")
    x.add_argument("--calib-images", type=count, default=60, help="int8: calibration images (spread over the folder)")
    x.add_argument("--calib-method", choices=["minmax", "entropy", "percentile"], default="minmax")
    x.add_argument(
        "--qdq",
        choices=["cpu", "tensorrt"],
        default="cpu",
        help="int8 ONNX layout: cpu (uint8 activations, ONNX Runtime's fastest; NAME-int8) or tensorrt "
        "(symmetric int8, float biases: what TensorRT's INT8 engines need; NAME-int8-trt)",
    )
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


def add_import_args(im: argparse.ArgumentParser) -> None:
    """`rtseg import`: your own model as an rtseg model."""
    im.add_argument(
        "file", help="a TFLite DeepLabV3-MobileNetV2 file, or an ONNX model with an NCHW image input and class logits or class ids"
    )
    im.add_argument("--name", help="model name (default: the file's stem)")
    im.add_argument("--labels", help="class names, one a line (default: PASCAL VOC's for 21-class DeepLab files)")
    im.add_argument("--palette", help="class colours, one 'R G B' a line (default: PASCAL VOC's colour map)")
    im.add_argument(
        "--mean",
        type=float,
        nargs=3,
        metavar=("R", "G", "B"),
        help="input mean, 0..1 (default: (q-128)/128 for TFLite files, ImageNet's for ONNX)",
    )
    im.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="input std, 0..1 (default: as --mean)")
    im.add_argument("--input-size", type=size_hw, help="HxW to run at (default: the file's own)")
    im.add_argument("--force", action="store_true", help="replace an imported model of the same name")


def add_models_args(m: argparse.ArgumentParser) -> None:
    """`rtseg models`: the zoo, or one model's classes."""
    m.add_argument("name", nargs="?", help="one model: its class ids, names and colours")
    m.add_argument("--pareto", action="store_true", help="FPS vs accuracy on this machine, Pareto front marked")
    m.add_argument("--task", type=normalize_task, choices=TASKS, default="seg")
    m.add_argument(
        "--rank-by",
        choices=["auto", "heldout", "val"],
        default="auto",
        help="with --pareto: the accuracy to rank by (auto: the held-out drive when the zoo has it)",
    )


def add_bench_args(b: argparse.ArgumentParser) -> None:
    """`rtseg bench`: models x backends, beside the alternatives."""
    b.add_argument(
        "--models", default=None, help="all (the default), or NAME,NAME,...; with --quick: the default and the fastest Pareto model"
    )
    b.add_argument(
        "--backends", default=None, help=f"comma-separated (onnxruntime, torch; default {BENCH_BACKENDS}, with --quick onnxruntime)"
    )
    b.add_argument("--data", help="CamVid-layout folder to measure accuracy on (default: the manifest's numbers)")
    b.add_argument("--split", default="val")
    b.add_argument("--video", default=str(Path(__file__).resolve().parent.parent / "examples" / "camvid_0016E5.mp4"))
    b.add_argument("--frames", type=count, default=300, help="end-to-end frames per run")
    b.add_argument("--iters", type=count, default=100, help="model-only inferences per repetition")
    b.add_argument("--reps", type=count, default=3, help="model-only repetitions (median)")
    b.add_argument("--no-peers", action="store_true", help="skip torchvision's models")
    b.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    b.add_argument(
        "--keyframes",
        metavar="N,N,auto",
        help="also measure each segmentation model on every Nth frame with optical flow between (rtseg run "
        "--keyframe N): FPS, and with --data the mIoU of the split run as a sequence",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="a short run: the default and the fastest Pareto model on ONNX Runtime beside the naive loop, "
        "1 x 20 inferences, 60 frames, 20 val images",
    )
    b.add_argument("--out", default="bench-results")
    b.add_argument("--quiet", action="store_true")


def add_profile_args(pr: argparse.ArgumentParser) -> None:
    """`rtseg profile`: every shipped model's speed here."""
    add_backend_args(pr)
    pr.add_argument("--models", default="all", help="all, or NAME,NAME,...")
    pr.add_argument("--streams", type=count, default=None)
    pr.add_argument("--threads", type=count, default=None)
    pr.add_argument("--live", action="store_true", help="profile the live-source layout (one stream, all cores)")
    pr.add_argument("--frames", type=count, default=60)
    pr.add_argument("--force", action="store_true", help="measure again even if cached")
