"""The options of the commands on the live path: `rtseg run`, `rtseg batch` and `rtseg serve` (their handlers are
in cli/run.py)."""

from __future__ import annotations

import argparse

from ..core.constants import DEFAULT_ALPHA, DEFAULT_H264_PRESET, DEFAULT_SCORE_THRESHOLD, H264_PRESETS
from ..core.tasks import TASKS, normalize_task
from .shared_options import add_backend_args, add_temporal_args
from .types import alpha, count, path_arg, positive_float, reconnect_attempts, size_hw, whole_number


def add_run_args(r: argparse.ArgumentParser) -> None:
    """`rtseg run`: sources, model or rate, outputs, live view, pacing."""
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


def add_batch_args(ba: argparse.ArgumentParser) -> None:
    """`rtseg batch`: many video files on Ray workers, resumable."""
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


def add_serve_args(sv: argparse.ArgumentParser) -> None:
    """`rtseg serve`: many live cameras behind one server."""
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
