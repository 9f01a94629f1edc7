"""`rtseg run`, `rtseg batch` and `rtseg serve`: the arguments into settings, the work handed to api/ and fleet/.

How `rtseg run` ended, for scripts (README, "Exit codes"): 0 the input ended as announced; 1 an error (bad
input, model or output; the message says which); 2 bad arguments; 3 a file ended before the frames its
header announced and 4 a live source lost (`RunStats.exit_code`); 130 / 143 Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from ..runtime.settings import BackendChoice, ModelChoice, RunSettings

log = logging.getLogger(__name__)


# -- rtseg run ---------------------------------------------------------------------------------------
def backend_choice(args: argparse.Namespace) -> "BackendChoice":
    """`--backend` (auto made concrete, once) and `--precision`."""
    from ..runtime.settings import BackendChoice

    return BackendChoice.resolve(args.backend, args.precision)


def model_choice(args: argparse.Namespace, **run_only) -> "ModelChoice":
    """The model options `rtseg run` and `rtseg serve` share (`run_only`: the ones only `run` has)."""
    from ..runtime.settings import ModelChoice

    # --target-fps with --model: run that model and report against the rate; without: select for it
    return ModelChoice(
        args.model,
        None if args.model else args.target_fps,
        args.task,
        adapt=not args.no_adapt,
        input_size=args.input_size,
        alpha=args.alpha,
        legend=args.legend,
        rank_by=args.rank_by,
        **run_only,
    )


def run_settings(args: argparse.Namespace) -> "RunSettings":
    """`rtseg run`'s arguments as the one settings value the runs work from (runtime/settings.py)."""
    from ..api.segmenter import temporal_settings
    from ..runtime.http_access import ServeAccess
    from ..runtime.outputs import SinkRequest
    from ..runtime.settings import RunSettings

    backend = backend_choice(args)
    choice = model_choice(
        args,
        margin=args.margin,
        max_latency=args.max_latency,
        score_threshold=args.score_threshold,
        temporal=temporal_settings(args.keyframe, args.smooth, args.flow),
    )
    sinks = SinkRequest(
        args.output,
        args.save_masks,
        args.json,
        show=not args.no_show,
        quiet=args.quiet,
        codec=args.codec,
        h264_preset=args.h264_preset,
        serve=args.serve,
        serve_access=ServeAccess(args.serve_token, tuple(args.serve_allow_host)),
        overwrite=args.overwrite,
    )
    return RunSettings(
        args.source,
        args.camera,
        backend,
        choice,
        sinks,
        args.target_fps,
        args.streams,
        args.threads,
        args.realtime,
        args.frames,
        args.loop,
        args.queue_size,
        args.stats,
        args.quiet,
        args.reconnect,
    )


def cmd_run(args: argparse.Namespace) -> int:
    """`rtseg run`: segment a source through the pipeline, live; the exit status says how it stopped."""
    from ..runtime.source_list import is_source_list

    # several sources (or --output-dir): one pipeline each, one model shared (api/run_many.py)
    sources, args.source = args.source, (args.source[0] if len(args.source) == 1 else None)
    settings = run_settings(args)
    if len(sources) > 1 or args.output_dir is not None or any(map(is_source_list, sources)):
        from ..api.run_many import run_many

        return run_many(settings, sources, args.output_dir)
    from ..api.run import run_one

    return run_one(settings)


# -- rtseg batch -------------------------------------------------------------------------------------
def cmd_batch(args: argparse.Namespace) -> int:
    """`rtseg batch`: many video files through the pipeline on Ray workers (rtseg/fleet/); resumable."""
    from ..fleet.batch import batch_command
    from ..fleet.plan import BatchRequest

    return batch_command(BatchRequest.from_args(args))


def cmd_serve(args: argparse.Namespace) -> int:
    """`rtseg serve --streams FILE`: many live cameras, one server, on Ray workers (rtseg/fleet/serve.py)."""
    from ..fleet.serve import ServeRequest, serve_command
    from ..runtime.http_access import ServeAccess
    from ..runtime.outputs import SinkRequest
    from ..runtime.settings import RunSettings

    backend = backend_choice(args)
    settings = RunSettings(
        backend=backend,
        choice=model_choice(args),
        sinks=SinkRequest(show=False, quiet=args.quiet),
        target_fps=args.target_fps,
        reconnect=args.reconnect,
        quiet=args.quiet,
    )
    return serve_command(
        ServeRequest(
            args.streams,
            settings,
            args.listen,
            args.ray_address,
            args.no_ray,
            args.workers,
            args.cpus_per_worker,
            args.max_restarts,
            args.duration,
            args.view_fps,
            backend.why,
            args.stats,
            ServeAccess(args.serve_token, tuple(args.serve_allow_host)),
        )
    )
