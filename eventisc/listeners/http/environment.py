"""What the environment adds to an ``http`` listener's requests, read as requests reads it:
``HTTP(S)_PROXY``/``ALL_PROXY`` and ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
and ``~/.netrc`` (or ``$NETRC``), with the standard library only (the urllib3 path does not
need requests).
"""

from __future__ import annotations

import ipaddress
import netrc
import os
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["ca_bundle", "netrc_auth", "select_proxy"]

_NETRC_FILES = (".netrc", "_netrc")


def ca_bundle() -> str | None:
    """The CA bundle the environment names (``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def netrc_auth(url: str) -> tuple[str, str] | None:
    """(login, password) for ``url``'s host from ``$NETRC`` or ``~/.netrc``; None if none.

    An unreadable or malformed file gives None, as it does with requests."""
    named = os.environ.get("NETRC")
    candidates = (named,) if named is not None else tuple(f"~/{f}" for f in _NETRC_FILES)
    path = next(
        (p for p in map(os.path.expanduser, candidates) if os.path.exists(p)),
        None,
    )
    host = urlsplit(url).hostname
    if path is None or not host:
        return None
    try:
        found = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return None
    if not found:
        return None
    return (found[0] or found[1] or "", found[2] or "")


def select_proxy(url: str, configured: Mapping[str, str]) -> str | None:
    """The proxy for ``url``: from ``configured`` (``requests_kwargs.proxies``, its keys as
    requests reads them), else from the environment; None when ``NO_PROXY`` (or the configured
    ``no_proxy``) exempts the host or no proxy is set."""
    parts = urlsplit(url)
    host, scheme = parts.hostname, parts.scheme.lower()
    proxies = dict(configured)
    if host and not _bypassed(url, host, proxies.get("no_proxy")):
        for key, value in urllib.request.getproxies_environment().items():
            if key != "no":
                proxies.setdefault(key, value)
    keys = (f"{scheme}://{host}", scheme, f"all://{host}", "all")
    proxy = next((proxies[k] for k in keys if proxies.get(k)), None)
    if proxy is not None and "://" not in proxy:
        return f"http://{proxy}"  # requests reads a bare host:port as http://
    return proxy


def _bypassed(url: str, host: str, no_proxy: str | None) -> bool:
    """Whether ``NO_PROXY`` (or ``no_proxy`` when given) exempts ``host``, as requests decides."""
    if no_proxy is None:
        no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY")
    entries = [h for h in (no_proxy or "").replace(" ", "").split(",") if h]
    if any(_matches(url, host, entry) for entry in entries):
        return True
    try:
        given = {"no": no_proxy} if no_proxy is not None else None
        return bool(urllib.request.proxy_bypass_environment(host, given))  # type: ignore[attr-defined]
    except Exception:  # requests, too, treats a failing check as "not exempt"
        return False


def _matches(url: str, host: str, entry: str) -> bool:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        port = urlsplit(url).port
        with_port = f"{host}:{port}" if port else host
        return host.endswith(entry) or with_port.endswith(entry)
    if "/" in entry:
        try:
            return address in ipaddress.IPv4Network(entry, strict=False)
        except ValueError:
            return False
    return host == entry
