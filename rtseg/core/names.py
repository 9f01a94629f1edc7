"""Model names are names, never paths.

A model name becomes a file name (`<name>.onnx` beside a manifest), a key in JSON, a label in the live
page and a word in a terminal. So it is a short run of `[A-Za-z0-9._-]` that starts with a letter or digit
(no `/`, no `..`, nothing absolute, no markup), checked wherever a name enters: `rtseg import --name` and
every manifest entry read from disk. A manifest's `file` is held to the same rule, so an entry cannot point
outside its own folder.
"""

from __future__ import annotations

import re

from .errors import RtsegError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def bad_name_reason(name: object) -> str | None:
    """Why `name` cannot be a model name, or None when it can.

    Example:
        >>> bad_name_reason("mnv2-050-lraspp-os32-240x320") is None
        True
        >>> bad_name_reason("../evil")
        "'../evil' is not a model name: use letters, digits, '.', '_', '+' and '-' (no '/', no '..')"
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        return f"{name!r} is not a model name: use letters, digits, '.', '_', '+' and '-' (no '/', no '..')"
    return None


def check_model_name(name: object) -> str:
    """`name` itself when it is a valid model name; an RtsegError saying why otherwise."""
    reason = bad_name_reason(name)
    if reason:
        raise RtsegError(reason)
    return name  # type: ignore[return-value]


def check_file_name(file: object) -> str:
    """A manifest's `file`: one plain file name in the manifest's own folder (same characters as a name)."""
    if bad_name_reason(file) is not None:
        raise RtsegError(f"{file!r} is not a plain file name in the models folder")
    return file  # type: ignore[return-value]
