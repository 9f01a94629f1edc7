"""`rtseg`'s argument parser: every command, option, type check and example in one place; each command's
handler lives beside its kind of work (run, evaluate, models, build)."""

from __future__ import annotations

import argparse
import logging
from typing import Callable, NoReturn

from .. import __version__
from .build import cmd_bench, cmd_export, cmd_train
from .evaluate import cmd_eval
from .models import cmd_import, cmd_models, cmd_profile
from .live_options import add_batch_args, add_run_args, add_serve_args
from .run import cmd_batch, cmd_run, cmd_serve
from .tool_options import add_bench_args, add_eval_args, add_export_args, add_import_args, add_models_args, add_profile_args


log = logging.getLogger(__name__)


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
    """`rtseg` and its commands: each command's options are added by its own function (cli/live_options.py,
    cli/tool_options.py, training/train_args.py) and handled by its handler."""
    from ..training.train_args import add_train_args

    p = _Parser(
        prog="rtseg",
        description="Real-time video segmentation (MobileNetV2, ONNX Runtime, TensorRT)",
        formatter_class=_Help,
        epilog="examples:\n" + "\n".join(f"  {EXAMPLES[c][0]}" for c in ("run", "models", "eval")) + "\n  rtseg COMMAND --help",
    )
    p.add_argument("--version", action="version", version=f"rtseg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = [
        ("run", "segment a video, images, a stream or a camera, live", add_run_args, cmd_run),
        ("eval", "per-class IoU and mIoU on a CamVid-layout split", add_eval_args, cmd_eval),
        ("train", "train a MobileNetV2 segmentation model", add_train_args, cmd_train),
        ("export", "export a trained checkpoint to ONNX and add it to the manifest", add_export_args, cmd_export),
        ("import", "your own segmentation model (.tflite DeepLab or .onnx) as an rtseg model", add_import_args, cmd_import),
        ("models", "list the shipped and imported models", add_models_args, cmd_models),
        ("bench", "FPS and mIoU of models x backends, beside the alternatives; tables and a plot", add_bench_args, cmd_bench),
        ("profile", "measure every shipped model's speed on this machine (cached)", add_profile_args, cmd_profile),
        ("batch", "segment many video files in parallel on Ray workers, resumably", add_batch_args, cmd_batch),
        ("serve", "watch many live cameras through one server, spread over Ray workers", add_serve_args, cmd_serve),
    ]
    for name, help, add_args, handler in commands:
        command = _command(sub, name, help)
        add_args(command)
        command.set_defaults(func=handler)
    return p
