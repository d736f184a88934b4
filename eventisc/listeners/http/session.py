"""The ``http`` kind's session layer: the requests session each listener sends through, and the
connections below it that keep one attempt within its deadline.

:class:`SessionHolder` holds a listener's :class:`requests.Session` (keep-alive, a connection
pool sized for concurrent triggers, no cookies kept between notifications), created on first
use, again after :meth:`SessionHolder.close` and in a forked child, and the environment's
settings for each origin it sends to.

Below requests, the session's connections (:class:`_Connection`) bound every step of an attempt
(connecting, sending, each read of the answer) by the deadline :func:`start_attempt` set for the
thread, and their responses (:class:`_Response`) skip informational (1xx) answers. The session
leaves redirects to the listener (:mod:`.redirects`): requests would turn a POST into a
body-less GET.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import io
import re
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ..._fork import register
from ..._version import __version__
from .errors import EXCERPT_CHARS
from .options import CREDENTIAL_OPTIONS, environment_settings

__all__ = [
    "Request",
    "SessionHolder",
    "attempt_over",
    "drain",
    "new_session",
    "start_attempt",
]

#: Idle keep-alive connections kept per host; busier moments open (and close) extra ones.
POOL_MAXSIZE = 32
#: Hosts whose connection pools a listener keeps (a templated url may reach several).
POOL_HOSTS = 16
#: Origins (scheme://host:port) whose environment settings a listener keeps.
ORIGINS_KEPT = 64
#: Bytes kept of a body for the excerpt an error quotes (a character may take up to 4).
_EXCERPT_BYTES = EXCERPT_CHARS * 4
#: Bytes of a body read at a time.
CHUNK = 8192

_ORIGIN = re.compile(r"[^:/?#]*://[^/?#]*")

#: What one hop of an attempt sends: method, url, body, headers.
Request = tuple[str, str, "bytes | None", "CaseInsensitiveDict[str]"]


class SessionHolder:
    """A listener's requests session, and the keywords requests is given for each origin.

    ``send_kwargs`` are the checked ``requests_kwargs`` passed to requests. Thread-safe; in a
    forked child the parent's session (its sockets) is forgotten, never closed.
    """

    def __init__(self, send_kwargs: Mapping[str, Any]):
        self._send_kwargs = dict(send_kwargs)
        #: What requests is given for a redirect to another origin: no credentials.
        self._anonymous_kwargs = {
            k: v for k, v in self._send_kwargs.items() if k not in CREDENTIAL_OPTIONS
        }
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._origins: dict[str, dict[str, Any]] = {}
        register(self)

    def get(self) -> requests.Session:
        """The session, created on first use (and after :meth:`close`)."""
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                self._session = new_session()
            return self._session

    def settings(self, url: str) -> dict[str, Any]:
        """The requests keywords for ``url``: the options with the environment's settings for
        its origin, read on the first request there (the session does not read them)."""
        match = _ORIGIN.match(url)
        origin = match.group() if match is not None else url
        settings = self._origins.get(origin)
        if settings is None:
            settings = environment_settings(origin, self._send_kwargs)
            if len(self._origins) < ORIGINS_KEPT:
                self._origins[origin] = settings
        return settings

    def foreign_settings(self, url: str) -> dict[str, Any]:
        """The requests keywords for a redirect to another origin than the url's: without the
        configured credentials (its own from ``~/.netrc`` apply). Not kept: redirects are rare."""
        match = _ORIGIN.match(url)
        return environment_settings(match.group() if match else url, self._anonymous_kwargs)

    def close(self) -> None:
        """Close the session's connections; the next :meth:`get` opens a new session."""
        with self._lock:
            session, self._session = self._session, None
            self._origins = {}
        if session is not None:
            session.close()

    def _after_fork(self) -> None:
        # The parent's sockets (and a lock another thread may have held) are not ours to use.
        self._lock = threading.Lock()
        self._session = None


def drain(response: requests.Response, limit: int) -> str:
    """Read the body, ``limit`` bytes of it at most; return its start as one line.

    A body read to its end leaves the connection reusable. A longer one is left unread:
    closing the response then drops the connection, which is cheaper than reading on (and a
    receiver cannot make eventisc read an endless body). Raises what urllib3 raises when
    reading fails.
    """
    raw = response.raw
    kept = bytearray()
    total = 0
    while total <= limit:  # one byte past the limit tells a longer body from one that fits
        chunk = raw.read(min(CHUNK, limit + 1 - total), decode_content=True)
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


class _NoCookies(http.cookiejar.CookiePolicy):
    """Keeps the session's cookie jar empty: each notification stands on its own."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = False

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


# -- the attempt's deadline ---------------------------------------------------------------------

#: The attempt this thread is sending: ``deadline``, a time.monotonic() value, set by
#: start_attempt before the listener sends. Connections find it here because requests and
#: urllib3 pass only a timeout down to them.
_attempt = threading.local()


def start_attempt(seconds: float) -> None:
    """Bound what this thread sends and reads from now on (until the next call) by
    ``seconds`` in all: every connection step below requests waits only for what is left."""
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


# -- the session and its connections ------------------------------------------------------------


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
            # sendall() takes the socket's timeout for all it sends.
            self.sock.settimeout(_time_left(self.timeout))
        super().send(data)


class _HTTPSConnection(_Connection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter, with pools of :class:`_Connection` (direct or through an HTTP(S)
    proxy; a SOCKS proxy keeps its own connections, bounded by the timeout only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


class _Session(requests.Session):
    """requests' session, leaving redirects to the listener (:mod:`.redirects`): requests
    would turn a POST into a body-less GET, send credentials on to another scheme or port, and
    read every redirect's body to its end."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def new_session() -> requests.Session:
    """A requests session as a listener sends with: deadline-bound connections, no retries,
    no cookies kept, no environment read (:meth:`SessionHolder.settings` reads it)."""
    session = _Session()
    # No retries: a POST may have reached the receiver; retrying is the caller's decision.
    adapter = _Adapter(pool_connections=POOL_HOSTS, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.cookies.set_policy(_NoCookies())
    # The holder reads the environment's settings once per origin (see SessionHolder.settings).
    session.trust_env = False
    session.headers["User-Agent"] = f"eventisc/{__version__} {requests.utils.default_user_agent()}"
    return session
