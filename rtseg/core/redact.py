"""Credentials never leave the process in text: one function that every error message goes through.

Camera URLs carry passwords (`rtsp://admin:S3cret@10.0.0.7/stream`, `http://cam/?user=admin&pwd=S3cret`).
`RtsegError` redacts its message when it is made, and the few places that turn other exceptions or URIs
into text (logs, `/stats.json`, JSON lines, the live pages) call `redact` too, so no credential reaches
stdout, stderr, a file or a browser, whichever of them shows it.
"""

from __future__ import annotations

import re

# scheme://user:password@  or  scheme://user@  anywhere in a text (userinfo never holds '/', '@' or spaces)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
# ?password=...&token=... : query parameters that commonly carry a secret (cameras, signed URLs)
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:pass(?:word|wd)?|pwd|token|access_token|api_?key|key|secret|auth|sig|signature)=)[^&;#\s]*", re.IGNORECASE
)
MASK = "***"


def redact(text: str) -> str:
    """`text` with every URL's user and password, and secret-looking query values, replaced by `***`.

    Example:
        >>> redact("cannot open stream rtsp://admin:S3cret@10.0.0.7:554/live?token=abc&ch=1")
        'cannot open stream rtsp://***@10.0.0.7:554/live?token=***&ch=1'
    """
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}{MASK}", text)
