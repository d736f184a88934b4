"""The ``http`` kind's urllib3 path: the connection pools a listener sends through when all its
``requests_kwargs`` are ones urllib3 can honour (see :func:`.options.needs_requests`).

:class:`PoolHolder` owns a :class:`urllib3.PoolManager` (one pool per origin, sized as
requests' session was: :data:`~.connection.POOL_HOSTS` origins, :data:`~.connection.POOL_MAXSIZE`
idle connections each) and one :class:`urllib3.ProxyManager` per proxy, created on first use,
again after :meth:`PoolHolder.close` and in a forked child. What requests would work out for
every request is worked out once: the TLS settings and Basic credentials at load, the
environment's proxy, CA bundle and netrc credentials once per origin. Its connections are those
of :mod:`.connection`, bound by the attempt's deadline.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3 import HTTPHeaderDict
from urllib3.util import Retry, make_headers, parse_url

from ..._fork import register
from ..._version import __version__
from .connection import (
    ORIGINS_KEPT,
    POOL_CLASSES,
    POOL_HOSTS,
    POOL_MAXSIZE,
    Request,
    origin_of,
)
from .environment import ca_bundle, netrc_auth, select_proxy

__all__ = ["DEFAULT_HEADERS", "Answer", "PoolHolder", "basic_auth"]


#: The headers every request starts with, as requests' session sends them.
DEFAULT_HEADERS = {
    "User-Agent": f"eventisc/{__version__} urllib3/{urllib3.__version__}",
    "Accept-Encoding": ", ".join(
        e.strip() for e in make_headers(accept_encoding=True)["accept-encoding"].split(",")
    ),
    "Accept": "*/*",
    "Connection": "keep-alive",
}
#: No retries (a POST may have reached the receiver; retrying is the caller's decision) and no
#: redirects (the listener follows them itself): built once, as urllib3 would per request.
_NO_RETRIES = Retry(False, redirect=False)
#: Methods requests sends without ``Content-Length: 0`` when they have no body.
_NO_LENGTH = ("GET", "HEAD")


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic auth, encoded as requests encodes it."""
    token = base64.b64encode(f"{user}:{password}".encode("latin-1")).decode("ascii")
    return f"Basic {token}"


class Answer:
    """A urllib3 response as the listener reads it (the names requests' response has)."""

    __slots__ = ("raw", "status_code", "reason", "headers")

    def __init__(self, raw: urllib3.BaseHTTPResponse):
        self.raw = raw
        self.status_code: int = raw.status
        self.reason: str | None = raw.reason
        self.headers: HTTPHeaderDict = raw.headers

    @property
    def encoding(self) -> str | None:
        """The body's charset, as requests works it out from ``Content-Type``."""
        content_type = self.headers.get("Content-Type")
        if not content_type:
            return None
        kind, *params = content_type.split(";")
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset":
                return value.strip("'\" ") or None
        if "text" in kind:
            return "ISO-8859-1"
        return "utf-8" if "application/json" in kind else None

    def close(self) -> None:
        """Done with the answer: an unread body drops the connection; else it is reused."""
        self.raw.close()
        self.raw.release_conn()

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Origin:
    """What requests to one origin are sent with: the manager, the Basic credentials, and
    the origin's own pool (a direct origin among the first :data:`POOL_HOSTS`), which sends
    without the manager's per-request url parsing and pool lookup."""

    __slots__ = ("manager", "authorization", "pool", "prefix")

    def __init__(self, manager: urllib3.PoolManager, authorization: str | None):
        self.manager = manager
        self.authorization = authorization
        self.pool: urllib3.HTTPConnectionPool | None = None
        self.prefix = 0  # the length of ``scheme://authority`` in this origin's urls


class PoolHolder:
    """A listener's urllib3 pools, and what each origin's requests are sent with.

    ``options`` are the checked ``requests_kwargs`` (``auth`` a (user, password) tuple,
    ``verify``, ``cert``, ``proxies``); ``timeout`` is seconds or (connect, read) seconds.
    Thread-safe; in a forked child the parent's pools (their sockets) are forgotten, never
    closed.
    """

    #: Which client sends: named in logs and tests.
    client = "urllib3"

    def __init__(self, options: Mapping[str, Any], timeout: float | tuple[float, float]):
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._timeout = urllib3.Timeout(connect=connect, read=read)
        auth = options.get("auth")
        self._authorization = basic_auth(*auth) if auth is not None else None
        self._proxies: dict[str, str] = dict(options.get("proxies") or {})
        self._verify: bool | str = options.get("verify", True)
        self._cert: str | tuple[str, str] | None = options.get("cert")
        self._lock = threading.Lock()
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._origins: dict[str, _Origin] = {}
        register(self)

    def send(self, request: Request, foreign: bool = False) -> Answer:
        """Send one hop, the body left unread; raises what urllib3 raises.

        ``foreign``: the url is on another origin than the listener's: no configured
        credentials (its own from netrc apply)."""
        method, url, data, headers = request
        origin = self._origin(url, foreign)
        authorization = origin.authorization
        if authorization is None and "@" in url:
            authorization = _url_authorization(url)
        no_length = data is None and method not in _NO_LENGTH
        if authorization is not None or no_length:
            headers = HTTPHeaderDict(headers)  # a copy, replacing a name in any case
            if authorization is not None:
                headers["Authorization"] = authorization  # as requests: auth over a header
            if no_length:
                headers["Content-Length"] = "0"
        # The origin's own pool takes the request target as is (no parsing of the url again);
        # the manager (a proxy, an unusual url) takes the whole url.
        opener: Any = origin.manager
        where: str = url
        if origin.pool is not None:
            target = _request_target(url[origin.prefix :])
            if target is not None:
                opener, where = origin.pool, target
        raw = opener.urlopen(
            method,
            where,
            body=data,
            headers=headers,
            timeout=self._timeout,
            retries=_NO_RETRIES,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
        )
        return Answer(raw)

    def _origin(self, url: str, foreign: bool) -> _Origin:
        key = origin_of(url)
        if foreign:
            return self._new_origin(key, None)  # not kept: redirects are rare
        origin = self._origins.get(key)
        if origin is None:
            origin = self._new_origin(key, self._authorization)
            if len(self._origins) < ORIGINS_KEPT:
                return self._keep(key, origin)
        return origin

    def _keep(self, key: str, origin: _Origin) -> _Origin:
        """Keep ``origin`` (with its own pool when it is direct), unless another thread has
        kept one for ``key`` meanwhile; return the one kept."""
        with self._lock:
            kept = self._origins.get(key)
            if kept is not None:
                return kept
            direct = origin.manager is self._managers.get(None)
            if direct and sum(o.pool is not None for o in self._origins.values()) < POOL_HOSTS:
                origin.pool = _own_pool(key, _tls_settings(self._verify, self._cert))
                origin.prefix = len(key)
            self._origins[key] = origin
            return origin

    def _new_origin(self, origin: str, authorization: str | None) -> _Origin:
        if authorization is None:
            found = netrc_auth(origin)
            authorization = basic_auth(*found) if found else None
        return _Origin(self._manager(select_proxy(origin, self._proxies)), authorization)

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        manager = self._managers.get(proxy)
        if manager is not None:
            return manager
        with self._lock:
            manager = self._managers.get(proxy)
            if manager is None:
                tls = _tls_settings(self._verify, self._cert)
                manager = self._managers[proxy] = _new_manager(proxy, tls)
            return manager

    def close(self) -> None:
        """Close every pool's connections; the next request opens new ones."""
        with self._lock:
            managers, self._managers = self._managers, {}
            origins, self._origins = self._origins, {}
        for manager in managers.values():
            manager.clear()
        for origin in origins.values():
            if origin.pool is not None:
                origin.pool.close()

    def _after_fork(self) -> None:
        # The parent's sockets (and a lock another thread may have held) are not ours to use.
        self._lock = threading.Lock()
        self._managers = {}
        self._origins = {}


#: A request target (path and query) urllib3 would send as it is: nothing to percent-encode.
_PLAIN_TARGET = re.compile(r"/(?:[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=]|%[0-9A-F]{2})*")


def _request_target(rest: str) -> str | None:
    """The request target of a url whose ``scheme://authority`` is cut off (``rest``): its
    path and query, without the fragment; None when it needs urllib3's encoding first."""
    target = rest.partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    return target if _PLAIN_TARGET.fullmatch(target) else None


def _own_pool(origin: str, tls: dict[str, Any]) -> urllib3.HTTPConnectionPool:
    """A pool of deadline-bound connections to ``origin`` (``scheme://host:port``)."""
    parts = parse_url(origin)
    scheme = (parts.scheme or "http").lower()
    pool_class = POOL_CLASSES[scheme]
    settings = tls if scheme == "https" else {}
    return pool_class(parts.host, parts.port, maxsize=POOL_MAXSIZE, **settings)


def _tls_settings(verify: bool | str, cert: str | tuple[str, str] | None) -> dict[str, Any]:
    """The pools' TLS keywords for ``verify`` and ``cert``, as requests sets them (its CA
    bundle from certifi, unless the environment names another).

    Raises OSError, as requests does, when the environment names a CA bundle that is not there.
    """
    settings: dict[str, Any] = {}
    if verify is False:
        settings["cert_reqs"] = "CERT_NONE"
    else:
        settings["cert_reqs"] = "CERT_REQUIRED"
        bundle = verify if isinstance(verify, str) else ca_bundle() or _certifi()
        if bundle is not None and not os.path.exists(bundle):
            raise OSError(
                f"Could not find a suitable TLS CA certificate bundle, invalid path: {bundle}"
            )
        if bundle is not None:
            key = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
            settings[key] = bundle
    if cert is not None:
        cert_file, key_file = (cert, None) if isinstance(cert, str) else cert
        settings["cert_file"], settings["key_file"] = cert_file, key_file
    return settings


def _certifi() -> str | None:
    try:
        import certifi
    except ImportError:  # the system's CA store
        return None
    return str(certifi.where())


def _new_manager(proxy: str | None, tls: dict[str, Any]) -> urllib3.PoolManager:
    """A pool manager of deadline-bound connections, direct or through ``proxy``."""
    if proxy is None:
        manager = urllib3.PoolManager(num_pools=POOL_HOSTS, maxsize=POOL_MAXSIZE, **tls)
    elif proxy.lower().startswith("socks"):
        # A SOCKS proxy keeps its own connections, bounded by the timeout only.
        from urllib3.contrib.socks import SOCKSProxyManager

        return SOCKSProxyManager(proxy, num_pools=POOL_HOSTS, maxsize=POOL_MAXSIZE, **tls)
    else:
        manager = urllib3.ProxyManager(
            proxy,
            num_pools=POOL_HOSTS,
            maxsize=POOL_MAXSIZE,
            proxy_headers=_proxy_headers(proxy),
            **tls,
        )
    manager.pool_classes_by_scheme = POOL_CLASSES
    return manager


def _proxy_headers(proxy: str) -> dict[str, str] | None:
    """``Proxy-Authorization`` from the proxy url's user and password, as requests sends it."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return None
    return {
        "Proxy-Authorization": basic_auth(unquote(parts.username), unquote(parts.password or ""))
    }


def _url_authorization(url: str) -> str | None:
    """Basic credentials written in ``url`` (``http://user:pass@host/``), as requests uses them."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return None
    return basic_auth(unquote(parts.username or ""), unquote(parts.password or ""))
