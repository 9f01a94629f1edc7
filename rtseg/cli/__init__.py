"""The `rtseg` command: run, eval, train, export, import, models, profile, bench, batch, serve.

Each command reads its arguments once, into a frozen value (`RunSettings` from runtime/settings.py, `EvalRequest`,
...), and works from that; what the program says goes through `logging` (the "rtseg" logger, set up in
`main`), while results and reports are printed to stdout. The parser is cli/parser.py, each command's
options in cli/live_options.py or cli/tool_options.py; each command's handler sits with its kind of work:
cli/run.py, cli/evaluate.py, cli/models.py, cli/build.py.
"""

from __future__ import annotations

import logging
import sys

from ..core.errors import RtsegError
from .parser import build_parser

log = logging.getLogger(__name__)


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
