"""The connections every ``http`` listener sends through, whichever client drives them
(urllib3 directly, or requests over it), and the reading of an answer's body.

The connections (:class:`_Connection`) bound every step of an attempt (connecting, sending,
each read of the answer) by the deadline :func:`start_attempt` set for the thread, and their
responses (:class:`_Response`) skip informational (1xx) answers. :data:`POOL_CLASSES` are the
urllib3 pools made of them. :func:`drain` reads a body within ``max_response_bytes``.
"""

from __future__ import annotations

import http.client
import io
import re
import socket
import threading
import time
from typing import Any, Protocol

import urllib3
from urllib3 import HTTPHeaderDict

from .errors import EXCERPT_CHARS

__all__ = [
    "CHUNK",
    "DEFAULT_PORTS",
    "ORIGINS_KEPT",
    "Client",
    "Headers",
    "POOL_CLASSES",
    "POOL_HOSTS",
    "POOL_MAXSIZE",
    "Request",
    "attempt_over",
    "drain",
    "origin_of",
    "start_attempt",
]

#: Idle keep-alive connections kept per host; busier moments open (and close) extra ones.
POOL_MAXSIZE = 32
#: Hosts whose connection pools a listener keeps (a templated url may reach several).
POOL_HOSTS = 16
#: Origins (scheme://host:port) whose settings (environment, TLS, credentials) a listener keeps.
ORIGINS_KEPT = 64
#: The port of a url that names none, by scheme.
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Bytes kept of a body for the excerpt an error quotes (a character may take up to 4).
_EXCERPT_BYTES = EXCERPT_CHARS * 4
#: Bytes of a body read at a time.
CHUNK = 8192

_ORIGIN = re.compile(r"[^:/?#]*://[^/?#]*")

#: A request's headers: a plain dict when no name is in it in two cases (cheaper to build and
#: to send), else an HTTPHeaderDict; add to it through an HTTPHeaderDict copy, whose names
#: match in any case.
Headers = dict[str, str] | HTTPHeaderDict
#: What one hop of an attempt sends: method, url, body, headers.
Request = tuple[str, str, "bytes | None", Headers]


class Client(Protocol):
    """What a listener sends through: :class:`~.pool.PoolHolder` (urllib3) or
    :class:`~.session.SessionHolder` (requests)."""

    #: ``"urllib3"`` or ``"requests"``.
    client: str

    def send(self, request: Request, foreign: bool = False) -> Any:
        """Send one hop; return the response (``status_code``, ``reason``, ``headers``,
        ``raw``, ``encoding``; a context manager), its body unread."""
        ...

    def close(self) -> None: ...


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` as written (the whole url if it has no such start)."""
    match = _ORIGIN.match(url)
    return match.group() if match is not None else url


# -- the attempt's deadline ---------------------------------------------------------------------

#: The attempt this thread is sending: ``deadline``, a time.monotonic() value, set by
#: start_attempt before the listener sends. Connections find it here because urllib3 (and
#: requests) pass only a timeout down to them.
_attempt = threading.local()


def start_attempt(seconds: float) -> None:
    """Bound what this thread sends and reads from now on (until the next call) by
    ``seconds`` in all: every connection step waits only for what is left."""
    _attempt.deadline = time.monotonic() + seconds


def attempt_over() -> bool:
    """Whether the deadline :func:`start_attempt` set for this thread has passed."""
    return time.monotonic() >= _attempt.deadline


class _DeadlinePassed(TimeoutError):
    """The attempt's deadline passed before the next step could start."""


def _time_left(timeout: float | None) -> float | None:
    """``timeout``, shortened to what is left of this thread's attempt.

    Raises :class:`_DeadlinePassed` (a TimeoutError, which urllib3 handles as one) when nothing
    is left.
    """
    deadline = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlinePassed("the deadline of the attempt has passed")
    return left if timeout is None or left < timeout else timeout


class _DeadlineReader(io.RawIOBase):
    """The socket as http.client reads a response from it, each read waiting no longer than
    the attempt's deadline allows (the socket's timeout bounds one read, not their sum)."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self._sock = sock
        # A SocketIO, as http.client's own: it keeps the socket open while the response reads.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self._timeout = sock.gettimeout()  # the read timeout urllib3 has just set

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if self._timeout is None or left < self._timeout:
            if left <= 0:
                raise _DeadlinePassed("the deadline of the attempt has passed")
            self._sock.settimeout(left)
            self._timeout = left
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client's response takes of a socket: ``makefile``, here bound by a deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


# -- the connections ---------------------------------------------------------------------------


class _Response(http.client.HTTPResponse):
    """http.client's response, read within the attempt's deadline, skipping informational
    answers: http.client skips ``100 Continue`` only, and would take a ``103 Early Hints`` for
    the final status (urllib3 and requests take what http.client gives)."""

    def __init__(
        self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ):
        deadline = getattr(_attempt, "deadline", None)
        # A TLS-in-TLS tunnel (HTTPS proxy) is no socket: it reads with its timeout only.
        if deadline is not None and isinstance(sock, socket.socket):
            sock = _DeadlineSocket(sock, deadline)
        super().__init__(sock, debuglevel, method, url)

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        # 101 Switching Protocols is final (eventisc never asks for it); http.client's begin()
        # skips 100 itself.
        while 100 < status < 200 and status != 101:
            http.client.parse_headers(self.fp)  # the informational answer's headers: dropped
            version, status, reason = super()._read_status()  # type: ignore[misc]
        return version, status, reason


class _Connection(urllib3.connection.HTTPConnection):
    """urllib3's connection, bounding connecting and sending by the attempt's deadline too."""

    response_class = _Response

    def _new_conn(self) -> socket.socket:
        self.timeout = _time_left(self.timeout)
        sock = super()._new_conn()
        try:
            # A TLS handshake may follow: Python bounds it, as a whole, by the socket's timeout.
            sock.settimeout(_time_left(self.timeout))
        except _DeadlinePassed:
            sock.close()
            raise
        return sock

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()  # as http.client would, so that sending gets only what is left
        if self.sock is not None:
            # sendall() takes the socket's timeout for all it sends. Setting it costs system
            # calls: only when it changes (a request sends its headers and body apart).
            left = _time_left(self.timeout)
            if self.sock.gettimeout() != left:
                self.sock.settimeout(left)
        super().send(data)


class _HTTPSConnection(_Connection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


def drain(response: Any, limit: int) -> str:
    """Read the body of ``response`` (a requests response or an :class:`~.pool.Answer`),
    ``limit`` bytes of it at most; return its start as one line.

    A body read to its end leaves the connection reusable. A longer one is left unread:
    closing the response then drops the connection, which is cheaper than reading on (and a
    receiver cannot make eventisc read an endless body). Raises what urllib3 raises when
    reading fails.
    """
    raw = response.raw
    kept = bytearray()
    total = 0
    while total <= limit:  # one byte past the limit tells a longer body from one that fits
        size = min(CHUNK, limit + 1 - total)
        # No more than the Content-Length left: a read for more would read again, for nothing.
        remaining = getattr(raw, "length_remaining", None)
        if remaining and remaining < size:
            size = remaining
        chunk = raw.read(size, decode_content=True)
        if not chunk:
            break
        total += len(chunk)
        if len(kept) < _EXCERPT_BYTES:
            kept += chunk[: _EXCERPT_BYTES - len(kept)]
        if raw.closed:
            break  # all of it came in (and the connection went back to the pool)
    try:
        text = kept.decode(response.encoding or "utf-8", "replace")
    except LookupError:
        text = kept.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
