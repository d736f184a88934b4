"""The ``http`` kind's requests path: the requests session a listener sends through when one
of its ``requests_kwargs`` only requests can honour (see :func:`.options.needs_requests`).

:class:`SessionHolder` holds the listener's :class:`requests.Session` (keep-alive, a
connection pool sized for concurrent triggers, no cookies kept between notifications), created
on first use, again after :meth:`SessionHolder.close` and in a forked child, and the
environment's settings for each origin it sends to. Its connections are those of
:mod:`.connection`, bound by the attempt's deadline. The session leaves redirects to the
listener (:mod:`.redirects`): requests would turn a POST into a body-less GET.
"""

from __future__ import annotations

import http.cookiejar
import threading
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..._fork import register
from ..._version import __version__
from .connection import ORIGINS_KEPT, POOL_CLASSES, POOL_HOSTS, POOL_MAXSIZE, Request, origin_of
from .options import CREDENTIAL_OPTIONS, environment_settings

__all__ = ["SessionHolder", "new_session"]


class SessionHolder:
    """A listener's requests session, and the keywords requests is given for each origin.

    ``send_kwargs`` are the checked ``requests_kwargs`` passed to requests; ``timeout`` is
    seconds or (connect, read) seconds. Thread-safe; in a
    forked child the parent's session (its sockets) is forgotten, never closed.
    """

    #: Which client sends: named in logs and tests.
    client = "requests"

    def __init__(self, send_kwargs: Mapping[str, Any], timeout: float | tuple[float, float]):
        self._send_kwargs = dict(send_kwargs)
        #: Transport adapters mounted on the session (not a keyword of a request).
        self._adapters: dict[str, Any] = self._send_kwargs.pop("adapters", None) or {}
        self._timeout = timeout
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
                session = new_session()
                for prefix, adapter in self._adapters.items():
                    session.mount(prefix, adapter)
                self._session = session
            return self._session

    def send(self, request: Request, foreign: bool = False) -> requests.Response:
        """Send one hop, the body left unread (``stream=True``); raises what requests raises.

        ``foreign``: the url is on another origin than the listener's: no configured
        credentials."""
        method, url, data, headers = request
        settings = self.foreign_settings(url) if foreign else self.settings(url)
        return self.get().request(
            method, url, data=data, headers=headers, timeout=self._timeout, stream=True, **settings
        )

    def settings(self, url: str) -> dict[str, Any]:
        """The requests keywords for ``url``: the options with the environment's settings for
        its origin, read on the first request there (the session does not read them)."""
        origin = origin_of(url)
        settings = self._origins.get(origin)
        if settings is None:
            settings = environment_settings(origin, self._send_kwargs)
            if len(self._origins) < ORIGINS_KEPT:
                self._origins[origin] = settings
        return settings

    def foreign_settings(self, url: str) -> dict[str, Any]:
        """The requests keywords for a redirect to another origin than the url's: without the
        configured credentials (its own from ``~/.netrc`` apply). Not kept: redirects are rare."""
        return environment_settings(origin_of(url), self._anonymous_kwargs)

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


class _Adapter(HTTPAdapter):
    """requests' adapter, with pools of :class:`_Connection` (direct or through an HTTP(S)
    proxy; a SOCKS proxy keeps its own connections, bounded by the timeout only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = POOL_CLASSES
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
