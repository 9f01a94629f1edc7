"""Who may see a live view (`http_view.LiveServer`): its token, and the Host header, checked before any feed;
and the address it listens on (`parse_address`).

The feeds are camera pictures, so the server has the two doors a notebook server or a dashboard has:

- A token (as Jupyter's). A server open beyond loopback always asks for one: the one given
  (`--serve-token`, or `RTSEG_SERVE_TOKEN`), else one made for the run and printed once as a URL. The
  first page load carries it as `?token=`; the reply sets it as an HttpOnly, SameSite=Strict cookie, which
  the page's own requests (the stream, the frames, the numbers) then carry. A program can send
  `Authorization: Bearer TOKEN` instead. On loopback with no token given, nothing is asked (any local
  program could read the feeds' files anyway).
- The Host header (as Grafana's). Through DNS rebinding, a web page the user visits can point a name of its
  own at 127.0.0.1 and read a loopback server as its own origin; its requests then name the attacker's host.
  Only names that mean this server are let in: its bound address, the loopback names on a loopback or
  wildcard bind, any IP literal on a wildcard bind (rebinding needs a name: an IP literal is its own
  origin), the machine's hostname, and the names given with `--serve-allow-host` (`*`: any).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import socket
from dataclasses import dataclass
from urllib.parse import parse_qs

from ..core.errors import RtsegError

ENV_TOKEN = "RTSEG_SERVE_TOKEN"
TOKEN_TEXT = re.compile(r"[A-Za-z0-9._~-]+")  # travels in URLs and a cookie as it is: no escaping anywhere
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
HOST_HEADER = re.compile(r"(\[[0-9A-Za-z:.%]+\]|[^\s:\[\]/@]+)(?::(\d{1,5}))?")


def parse_address(text: str, flag: str = "--serve") -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port); a bare port binds loopback."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise RtsegError(f"{flag} wants HOST:PORT or PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise RtsegError(f"{flag}: port {number} is out of range")
    return (host.strip("[]") or "127.0.0.1"), number


@dataclass(frozen=True)
class ServeAccess:
    """What the command line asked of the door: the token (None: `RTSEG_SERVE_TOKEN`, else one made up when
    the server is open beyond loopback) and the names, beyond the server's own, that a Host header may give."""

    token: str | None = None
    allow_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.allow_hosts:  # said before the server listens, not found out as a refused browser
            if host_name(name) is None:
                raise RtsegError(f"--serve-allow-host {name!r}: not a host name (NAME, NAME:PORT, an IP or '*')")


@dataclass(frozen=True)
class Verdict:
    """A request let in (code 200), or refused with a plain body; headers go with either reply."""

    code: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def admitted(self) -> bool:
        return self.code == 200


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only programs on this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """0.0.0.0 or ::, every address of the machine."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def host_name(header: str) -> str | None:
    """The name a Host header gives, lowercased, without its port or brackets: `[::1]:8080` -> `::1`,
    `Example.COM.:80` -> `example.com`; None when it is no host[:port]."""
    m = HOST_HEADER.fullmatch(header.strip())
    if m is None or (m.group(2) is not None and int(m.group(2)) > 65535):
        return None
    name = m.group(1).strip("[]").lower().rstrip(".")
    return name or None


def resolve_token(given: str | None, loopback: bool) -> tuple[str | None, bool]:
    """(the token to ask for, whether it was made here): the one given, else `RTSEG_SERVE_TOKEN`, else one
    made up for a server open beyond loopback; None on loopback with none given."""
    token = given if given is not None else (os.environ.get(ENV_TOKEN) or None)
    if token is not None:
        where = "--serve-token" if given is not None else ENV_TOKEN
        if not TOKEN_TEXT.fullmatch(token):
            raise RtsegError(f"{where} must be letters, digits and - _ . ~ (it travels in URLs and a cookie as it is)")
        return token, False
    if loopback:
        return None, False
    return secrets.token_urlsafe(16), True


class Gate:
    """The checks every request passes before it sees a feed: the Host header, then the token."""

    def __init__(self, bind_host: str, port: int, token: str | None, allow_hosts: tuple[str, ...] = ()):
        self.loopback = is_loopback(bind_host)
        self.wildcard = is_wildcard(bind_host)
        self.token = token
        self.cookie_name = f"rtseg-token-{port}"  # a browser shares cookies between a host's ports: one per server
        names = {bind_host.lower(), socket.gethostname().lower()}
        if self.loopback or self.wildcard:  # a wildcard bind is reached through loopback too
            names |= LOOPBACK_NAMES
        names |= {h for h in map(host_name, allow_hosts) if h is not None}
        self.hosts = frozenset(names)

    def host_allowed(self, header: str | None) -> bool:
        """Whether a Host header names this server (None: no header, as HTTP/1.0 may send, only on loopback).
        Its port is not compared: rebinding changes the name, not the port, and a proxy in front gives its own."""
        if header is None:
            return self.loopback
        name = host_name(header)
        if name is None:
            return False
        return "*" in self.hosts or name in self.hosts or (self.wildcard and _is_ip(name))

    def check(self, host: str | None, query: str = "", cookie: str | None = None, authorization: str | None = None) -> Verdict:
        """Let a request in, or say why not: 403 for a Host that names another server, 401 without the token.
        A right `?token=` is answered with the cookie, so the page's own requests need no token in their URLs."""
        if not self.host_allowed(host):
            return Verdict(403, b"403: this server does not answer to that Host name (see --serve-allow-host)\n")
        if self.token is None:
            return Verdict(200)
        if any(self._same(t) for t in parse_qs(query).get("token", [])):
            cookie_header = f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            return Verdict(200, headers=(("Set-Cookie", cookie_header),))
        scheme, _, credential = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer" and self._same(credential.strip()):
            return Verdict(200)
        if any(self._same(v) for k, v in _cookies(cookie) if k == self.cookie_name):
            return Verdict(200)
        return Verdict(
            401,
            b"401: this live view asks for its token: open the URL printed when it started "
            b"(.../?token=...), or send Authorization: Bearer TOKEN\n",
            (("WWW-Authenticate", 'Bearer realm="rtseg live view"'),),
        )

    def _same(self, given: str) -> bool:
        # in constant time: how long a wrong guess takes says nothing of how much of it was right
        assert self.token is not None, "compared only by a server with a token"  # `check` returned before, else
        return hmac.compare_digest(given.encode(), self.token.encode())


def _cookies(header: str | None) -> list[tuple[str, str]]:
    """A Cookie header's (name, value) pairs. Parsed by hand: http.cookies gives up on the whole header at one
    odd cookie, and other servers on the same host (any port) put theirs in the same header."""
    pairs = []
    for part in (header or "").split(";"):
        name, eq, value = part.partition("=")
        if eq:
            pairs.append((name.strip(), value.strip().strip('"')))
    return pairs
