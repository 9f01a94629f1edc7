"""User-facing errors: the CLI prints these as one line and exits non-zero, never with a traceback."""

from __future__ import annotations

from .redact import redact


class RtsegError(Exception):
    """A problem with the user's input or environment (bad file, camera, model, path...).

    Its message is redacted when it is made (`core/redact.py`): a camera URL's password never reaches the
    terminal, a JSON line, /stats.json or a page, wherever the error is shown.
    """

    def __init__(self, *args: object):
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))
