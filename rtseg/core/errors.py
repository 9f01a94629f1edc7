"""User-facing errors: the CLI prints these as one line and exits non-zero, never with a traceback."""


class RtsegError(Exception):
    """A problem with the user's input or environment (bad file, camera, model, path...)."""
