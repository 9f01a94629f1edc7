"""`rtseg`'s argument parser: every command, option, type check and example in one place; each command's
handler lives beside its kind of work (run, evaluate, models, build)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import NoReturn

from .. import __version__
from ..core.constants import DEFAULT_ALPHA, DEFAULT_H264_PRESET, DEFAULT_SCORE_THRESHOLD, H264_PRESETS
from ..core.tasks import TASKS, normalize_task
from .types import alpha, count, keyframe_interval, path_arg, positive_float, reconnect_attempts, size_hw, split_name, whole_number
from .build import BENCH_BACKENDS, cmd_bench, cmd_export, cmd_train
from .evaluate import cmd_eval
from .models import cmd_import, cmd_models, cmd_profile
from .run import cmd_batch, cmd_run, cmd_serve


log = logging.getLogger(__name__)


def add_temporal_args(p: argparse.ArgumentParser, keyframe_default: str | None, keyframe_help: str, smooth_help: str) -> None:
    """--keyframe and --smooth, as `rtseg run` and `rtseg eval` take them."""
    p.add_argument("--keyframe", metavar="N|auto", type=keyframe_interval, default=keyframe_default, help=keyframe_help)
    p.add_argument("--smooth", action="store_true", help=smooth_help)


def add_backend_args(p: argparse.ArgumentParser) -> None:
    from ..backends import available_backends

    p.add_argument(
        "--backend",
        default="auto",
        choices=available_backends(),
        help="auto (default): TensorRT on an NVIDIA GPU when installed, else ONNX Runtime CUDA, else the CPU; "
        "null: no inference at all (a fixed class map), to measure the pipeline alone",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        default="fp16",
        help="TensorRT engine precision (default fp16; int8 builds from the model's TensorRT INT8 sibling: "
        "rtseg export --model NAME --precision int8 --qdq tensorrt)",
    )


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
        if not text or "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


EXAMPLES = {
    "run": [
        "rtseg run video.mp4 --output overlay.mp4 --json frames.jsonl --save-masks masks/",
        "rtseg run --camera 0 --target-fps 30 --serve 8080     # the selector holds 30 FPS; watch in a browser",
        "rtseg run cams.txt --target-fps 15 --output-dir rec --serve 8080   # every camera at 15 FPS, recorded",
    ],
    "eval": [
        "rtseg eval --data ../shared/data/camvid --split holdout:0006R0     # the default, on a drive it never saw",
        "rtseg eval --model mnv2-050-lraspp-os32-240x320-voc-kd --data ../shared/data/camvid --split val --keyframe 3",
    ],
    "train": [
        "rtseg train --data ../shared/data/camvid --width 0.5 --head lraspp --output-stride 32 --input-size 240x320",
        "rtseg train --data ../shared/data/camvid --width 0.5 --head lraspp --output-stride 32 --input-size 240x320 "
        "--pretrained voc-tflite:../shared/data/pretrained/deeplabv3_mnv2_dm05_pascal_quant.tflite "
        "--val-split holdout:0006R0 --epochs 40",
    ],
    "export": [
        "rtseg export --checkpoint runs/mnv2-050-lraspp-os32-240x320/best.pt",
        "rtseg export --model mnv2-100-dlv3p-os16-288x384-voc --precision int8 --calib-data ../shared/data/camvid",
    ],
    "import": [
        "rtseg import deeplabv3_mnv2_pascal_quant.tflite --name voc && rtseg run --camera 0 --model voc",
        "rtseg import room.onnx --labels labels.txt --palette palette.txt --name room",
    ],
    "models": ["rtseg models", "rtseg models mnv2-050-lraspp-os32-240x320-voc-kd     # its class ids, names and colours"],
    "bench": ["rtseg bench --quick", "rtseg bench --data ../shared/data/camvid --video ../shared/data/video/vtest.avi --out bench-results"],
    "profile": ["rtseg profile", "rtseg profile --models mnv2-050-lraspp-os32-240x320-voc-kd --force"],
    "serve": [
        "rtseg serve --streams cams.txt --listen 0.0.0.0:8080 --target-fps 15   # a local Ray cluster, every core",
        "rtseg serve --streams cams.toml --ray-address auto --cpus-per-worker 4   # on the cluster `ray start` runs",
    ],
    "batch": [
        "rtseg batch 'videos/*.mp4' --out segmented --json     # every core; run it again to resume",
        "rtseg batch videos/ --out segmented --ray-address auto --target-fps 15   # on the cluster `ray start` runs",
    ],
}


def _command(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help[:1].upper() + help[1:] + ".",
        formatter_class=_Help,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[name]),
    )


def build_parser() -> argparse.ArgumentParser:
    from ..training.train_args import add_train_args

    p = _Parser(
        prog="rtseg",
        description="Real-time video segmentation (MobileNetV2, ONNX Runtime, TensorRT)",
        formatter_class=_Help,
        epilog="examples:\n" + "\n".join(f"  {EXAMPLES[c][0]}" for c in ("run", "models", "eval")) + "\n  rtseg COMMAND --help",
    )
    p.add_argument("--version", action="version", version=f"rtseg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = _command(sub, "run", "segment a video, images, a stream or a camera, live")
    r.add_argument(
        "source",
        nargs="*",
        help="video file, image, folder or glob of images, or rtsp:// / http:// URL; "
        "several (or a list of them: a .txt or .toml file): one pipeline each, "
        "one model shared (needs --output-dir or --serve)",
    )
    r.add_argument("--camera", type=int, metavar="N", help="camera index instead of SOURCE")
    r.add_argument("--model", help="shipped model name or path to an .onnx file (default: the manifest's default)")
    add_backend_args(r)
    r.add_argument(
        "--streams",
        type=count,
        default=None,
        help="frames inferred in parallel (default: one per core up to 4 for files, 1 for live sources)",
    )
    r.add_argument("--threads", type=count, default=None, help="inference threads per stream (default: cores / streams)")
    r.add_argument("--input-size", type=size_hw, help="run the model at HxW instead of its native size")
    r.add_argument("--output", metavar="FILE", type=path_arg, help="overlay video (.mp4/.avi/.mkv) or image (.png/.jpg)")
    r.add_argument(
        "--codec",
        choices=["auto", "h264", "mp4v"],
        default="auto",
        help="video output: h264 (browser-playable, through PyAV), mp4v "
        "(MPEG-4 Part 2, as OpenCV writes it; through PyAV when installed), or auto: h264 when PyAV is "
        "installed (default: auto)",
    )
    r.add_argument(
        "--h264-preset",
        choices=H264_PRESETS,
        default=DEFAULT_H264_PRESET,
        help="x264's speed/size trade for H.264 output: ultrafast takes the least CPU a frame (0.56x "
        "superfast's, for 1.5x its bit rate); slower presets make smaller files for long "
        f"recordings (default: {DEFAULT_H264_PRESET})",
    )
    r.add_argument("--save-masks", metavar="DIR", type=path_arg, help="write one PNG class-id map per frame")
    r.add_argument(
        "--json",
        metavar="FILE",
        nargs="?",
        const=True,
        type=path_arg,
        help="write one JSON line per frame (with --output-dir: --json alone, to DIR/<label>.jsonl)",
    )
    r.add_argument(
        "--output-dir",
        metavar="DIR",
        type=path_arg,
        help="an existing folder, holding no input, for each source's outputs: <label>.mp4 (overlay) "
        "and, with --json, <label>.jsonl (labels: file stems, cam<N>, host_port_path)",
    )
    r.add_argument("--stats", metavar="FILE", type=path_arg, help="write the run summary as JSON")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="let --output/--json replace an input file and masks replace their own images: written "
        "aside, moved over the input only after the run read all of it (else kept as *.partial)",
    )
    r.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve the live overlay over HTTP: a page at /, MJPEG at /stream.mjpg, numbers at "
        "/stats.json (several sources: a grid at /, each source's at /<label>/); a bare PORT binds "
        "127.0.0.1; 0.0.0.0:PORT or [::]:PORT opens it to the network, behind a token (printed "
        "as a URL once, unless --serve-token gives it)",
    )
    r.add_argument(
        "--serve-token",
        metavar="TOKEN",
        help="the token --serve asks for (default: $RTSEG_SERVE_TOKEN; else none on loopback, and one "
        "made for the run beyond it); a browser gives it once as ?token=, then as a cookie; a "
        "program as ?token= or 'Authorization: Bearer TOKEN'",
    )
    r.add_argument(
        "--serve-allow-host",
        metavar="NAME",
        action="append",
        default=[],
        help="a name, beyond this machine's and the bound address, that browsers may reach --serve by "
        "(a proxy's, a DNS alias); other Host headers are refused against DNS rebinding "
        "(repeatable; '*': any)",
    )
    r.add_argument("--no-show", action="store_true", help="no window (automatic without a display)")
    r.add_argument("--alpha", type=alpha, default=DEFAULT_ALPHA, help=f"overlay opacity, 0..1 (default {DEFAULT_ALPHA})")
    r.add_argument(
        "--score-threshold",
        type=alpha,
        default=DEFAULT_SCORE_THRESHOLD,
        help=f"boxes below this score are not shown, 0..1 (default {DEFAULT_SCORE_THRESHOLD})",
    )
    r.add_argument("--legend", action="store_true", help="draw the class colour legend on the overlay")
    r.add_argument(
        "--target-fps",
        type=positive_float,
        help="without --model: run the most accurate model that holds this rate here, and keep it held "
        "(several sources: every source at this rate, one model for them all, switched together)",
    )
    r.add_argument("--max-latency", type=positive_float, metavar="MS", help="with --target-fps: p95 latency bound")
    r.add_argument("--task", type=normalize_task, choices=TASKS, default="seg", help="with --target-fps: what the model must do")
    r.add_argument("--margin", type=positive_float, default=1.1, help="with --target-fps: speed margin at start")
    r.add_argument("--no-adapt", action="store_true", help="with --target-fps: choose once, never switch")
    r.add_argument(
        "--rank-by",
        choices=["auto", "heldout", "val"],
        default="auto",
        help="with --target-fps: the accuracy that ranks the models: heldout (drive 0006R0, never trained "
        "on), val (optimistic), or auto: heldout when at least two models have it",
    )
    add_temporal_args(
        r,
        "1",
        "run the model on every Nth frame and carry its result to the frames between by optical "
        "flow (auto: a new key frame when the motion says so; a scene cut always forces one)",
        "steadier masks: blend each frame's classes with the motion-compensated frames before it",
    )
    r.add_argument(
        "--flow",
        choices=["ultrafast", "fast", "medium"],
        default=None,
        help="optical flow preset (default: ultrafast with --keyframe, medium for --smooth alone)",
    )
    r.add_argument("--realtime", action="store_true", help="play a file at its own frame rate, like a camera")
    r.add_argument(
        "--reconnect",
        type=reconnect_attempts,
        default=5,
        metavar="N|forever",
        help="live sources: when the stream ends, fails or stalls for 5 s, reopen it up to N times in a row "
        "(back-off 0.5 s doubling to 8 s), 'forever', or 0 to end the run with it (default: 5)",
    )
    r.add_argument("--frames", type=count, metavar="N", help="stop after N frames")
    r.add_argument("--loop", type=count, default=1, metavar="N", help="play a file N times over")
    r.add_argument("--queue-size", type=count, default=2, help="frames buffered between stages (files)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.set_defaults(func=cmd_run)

    e = _command(sub, "eval", "per-class IoU and mIoU on a CamVid-layout split")
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
    e.set_defaults(func=cmd_eval)

    t = _command(sub, "train", "train a MobileNetV2 segmentation model")
    add_train_args(t)
    t.set_defaults(func=cmd_train)

    x = _command(sub, "export", "export a trained checkpoint to ONNX and add it to the manifest")
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
    x.set_defaults(func=cmd_export)

    im = _command(sub, "import", "your own segmentation model (.tflite DeepLab or .onnx) as an rtseg model")
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
    im.set_defaults(func=cmd_import)

    m = _command(sub, "models", "list the shipped and imported models")
    m.add_argument("name", nargs="?", help="one model: its class ids, names and colours")
    m.add_argument("--pareto", action="store_true", help="FPS vs accuracy on this machine, Pareto front marked")
    m.add_argument("--task", type=normalize_task, choices=TASKS, default="seg")
    m.add_argument(
        "--rank-by",
        choices=["auto", "heldout", "val"],
        default="auto",
        help="with --pareto: the accuracy to rank by (auto: the held-out drive when the zoo has it)",
    )
    m.set_defaults(func=cmd_models)

    b = _command(sub, "bench", "FPS and mIoU of models x backends, beside the alternatives; tables and a plot")
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
    b.set_defaults(func=cmd_bench)

    pr = _command(sub, "profile", "measure every shipped model's speed on this machine (cached)")
    add_backend_args(pr)
    pr.add_argument("--models", default="all", help="all, or NAME,NAME,...")
    pr.add_argument("--streams", type=count, default=None)
    pr.add_argument("--threads", type=count, default=None)
    pr.add_argument("--live", action="store_true", help="profile the live-source layout (one stream, all cores)")
    pr.add_argument("--frames", type=count, default=60)
    pr.add_argument("--force", action="store_true", help="measure again even if cached")
    pr.set_defaults(func=cmd_profile)

    ba = _command(sub, "batch", "segment many video files in parallel on Ray workers, resumably")
    ba.add_argument(
        "videos", nargs="+", help="video files, folders of videos, or globs ('videos/*.mp4', quoted: rtseg expands it, ** included)"
    )
    ba.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for every video's outputs: NAME.mp4 (overlay), NAME.jsonl, NAME.masks/ and "
        "NAME.done.json, written when the video is complete; it may not hold the inputs",
    )
    which = ba.add_mutually_exclusive_group()
    which.add_argument("--model", help="shipped model name or path to an .onnx file (default: the manifest's default)")
    which.add_argument(
        "--target-fps",
        type=positive_float,
        help="the most accurate model that holds this rate on one worker here, chosen once for the batch",
    )
    where = ba.add_mutually_exclusive_group()
    where.add_argument(
        "--ray-address",
        metavar="auto|ADDR",
        help="an existing Ray cluster (auto: the one `ray start` runs here; ADDR: its head's host:port), "
        "which sees the videos and DIR at the same paths (default: a local cluster for this batch)",
    )
    where.add_argument(
        "--no-ray", action="store_true", help="one video at a time in this process, every core on it (what runs when Ray is not installed)"
    )
    ba.add_argument(
        "--workers",
        type=count,
        metavar="N",
        help="videos at once: a Ray actor each, with one CPU and one inference thread (default: every core "
        "here, or every CPU of the --ray-address cluster)",
    )
    ba.add_argument(
        "--retries",
        type=lambda t: whole_number(t, 0),
        default=2,
        metavar="N",
        help="new attempts, on another worker, for a video whose worker died",
    )
    ba.add_argument("--json", action="store_true", help="also write NAME.jsonl: one JSON line per frame")
    ba.add_argument("--save-masks", action="store_true", help="also write NAME.masks/: one PNG class-id map per frame")
    ba.add_argument(
        "--quiet", action="store_true", help="no progress bar and no progress messages (the table, warnings and errors are still printed)"
    )
    ba.set_defaults(func=cmd_batch)

    sv = _command(sub, "serve", "watch many live cameras through one server, spread over Ray workers")
    sv.add_argument(
        "--streams",
        required=True,
        metavar="FILE",
        help="the cameras: a .txt list (one URI per line, 'LABEL = URI' to name one) or a .toml list ([[source]] uri = ..., label = ...)",
    )
    sv.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="[HOST:]PORT",
        help="where the pages are served: a grid of every camera at /, each at /<label>/, the numbers "
        "at /stats.json (a bare PORT binds 127.0.0.1; 0.0.0.0:PORT or [::]:PORT opens it to the "
        "network, behind a token printed as a URL once, unless --serve-token gives it)",
    )
    sv.add_argument(
        "--serve-token",
        metavar="TOKEN",
        help="the token the pages ask for (default: $RTSEG_SERVE_TOKEN; else none on loopback, one "
        "made for the run beyond it): ?token= once, then a cookie, or 'Authorization: Bearer TOKEN'",
    )
    sv.add_argument(
        "--serve-allow-host",
        metavar="NAME",
        action="append",
        default=[],
        help="a name, beyond this machine's and the bound address, that browsers may reach the pages by "
        "(repeatable; '*': any); other Host headers are refused against DNS rebinding",
    )
    which = sv.add_mutually_exclusive_group()
    which.add_argument("--model", help="shipped model name or path to an .onnx file (default: the manifest's default)")
    which.add_argument(
        "--target-fps",
        type=positive_float,
        help="every camera at this rate: each worker runs the most accurate model that holds it for all its cameras together",
    )
    add_backend_args(sv)
    sv.add_argument("--task", type=normalize_task, choices=TASKS, default="seg", help="with --target-fps: what the model must do")
    sv.add_argument("--no-adapt", action="store_true", help="with --target-fps: choose once, never switch")
    sv.add_argument(
        "--rank-by",
        choices=["auto", "heldout", "val"],
        default="auto",
        help="with --target-fps: the accuracy that ranks the models (as in rtseg run)",
    )
    sv.add_argument("--input-size", type=size_hw, help="run the model at HxW instead of its native size")
    sv.add_argument("--alpha", type=alpha, default=DEFAULT_ALPHA, help=f"overlay opacity, 0..1 (default {DEFAULT_ALPHA})")
    sv.add_argument("--legend", action="store_true", help="draw the class colour legend on the overlay")
    sv.add_argument(
        "--reconnect",
        type=reconnect_attempts,
        default=None,
        metavar="N|forever",
        help="a camera that drops is reopened up to N times in a row, or forever (default: forever)",
    )
    where = sv.add_mutually_exclusive_group()
    where.add_argument(
        "--ray-address",
        metavar="auto|ADDR",
        help="an existing Ray cluster (auto: the one `ray start` runs here; ADDR: its head's host:port) "
        "(default: a local cluster for this command)",
    )
    where.add_argument("--no-ray", action="store_true", help="every camera in this process (what runs without Ray)")
    sv.add_argument(
        "--workers",
        type=count,
        metavar="N",
        help="camera workers (Ray actors), the cameras dealt out between them (default: one per "
        "--cpus-per-worker CPUs, at most one per camera)",
    )
    sv.add_argument(
        "--cpus-per-worker", type=count, default=1, metavar="N", help="CPUs each worker takes, shared by its cameras' inference threads"
    )
    sv.add_argument(
        "--max-restarts",
        type=lambda t: whole_number(t, -1),
        default=-1,
        metavar="N",
        help="Ray restarts a worker that died, with its cameras, up to N times (-1: forever)",
    )
    sv.add_argument("--view-fps", type=positive_float, default=15.0, help="each camera's live view, at most this rate")
    sv.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
    sv.add_argument("--stats", metavar="FILE", type=path_arg, help="write every camera's last numbers as JSON when it stops")
    sv.add_argument("--quiet", action="store_true", help="only warnings and errors")
    sv.set_defaults(func=cmd_serve)
    return p
