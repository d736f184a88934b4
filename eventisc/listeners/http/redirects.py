"""Following redirects within one attempt of the ``http`` kind.

The listener's client leaves redirects alone (requests would turn a POST into a body-less GET,
send credentials on to another scheme or port, and read every redirect's body to its end);
:func:`follow` follows them instead: the method and body are kept, credentials go only to the
request's own origin, and at most :data:`~.options.MAX_REDIRECTS` are followed, all within the
attempt's deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urljoin, urlsplit

from urllib3 import HTTPHeaderDict

from ...errors import DeliveryError, HTTPStatusError
from ..base import mask_url
from .connection import DEFAULT_PORTS, Headers, Request
from .errors import status_error
from .options import CREDENTIAL_HEADERS, MAX_REDIRECTS, url_problem

__all__ = ["REDIRECTS", "SAFE_METHODS", "Exchange", "follow", "followed_statuses"]

logger = logging.getLogger(__name__)

#: Statuses that point elsewhere with a ``Location`` header.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Methods that follow redirects unless ``follow_redirects`` says otherwise: no body to lose.
SAFE_METHODS = ("GET", "HEAD")


#: ``exchange(request, where, foreign)``: send one hop, return the response and the start of
#: its body (see ``HttpListener._exchange``); ``foreign``: the url is on another origin.
#: The response is a requests response or an :class:`~.pool.Answer`: both have
#: ``status_code``, ``reason`` and ``headers``.
Exchange = Callable[[Request, str, bool], "tuple[Any, str]"]


def followed_statuses(method: str, follow_redirects: bool) -> frozenset[int]:
    """The redirect statuses a listener sending ``method`` follows (none when
    ``follow_redirects`` is off)."""
    if not follow_redirects:
        return frozenset()
    # 303 See Other points at a result to fetch, not at a place to send a body again.
    return REDIRECTS if method in SAFE_METHODS else REDIRECTS - {303}


def follow(
    exchange: Exchange,
    request: Request,
    response: Any,
    excerpt: str,
    where: str,
    *,
    followed: frozenset[int],
    success_status: Collection[int],
) -> str:
    """Follow the redirects that ``response`` (the answer to ``request``, its body starting
    with ``excerpt``) starts, as far as ``followed`` (the statuses followed) allows and
    :data:`~.options.MAX_REDIRECTS` at most; return ``"HTTP <status>"`` when a status in
    ``success_status`` ends them.

    Method and body are kept; credentials go only to the request's own origin. Raises
    :class:`HTTPStatusError` for a redirect not followed or a final status that is no
    success, :class:`DeliveryError` for a redirect to no http(s) URL or too many of them, and
    what ``exchange`` raises.
    """
    method, url, data, headers = request
    origin = _origin(url)
    here, status = where, response.status_code
    for _ in range(MAX_REDIRECTS):
        if response.status_code not in followed:
            raise _not_followed(here, (method, url), response, excerpt, bool(followed))
        url = _redirect_target(url, response, here)
        here = f"{where} (redirected to {mask_url(url)})"
        foreign = _origin(url) != origin
        hop_headers = _without_credentials(headers) if foreign else headers
        response, excerpt = exchange((method, url, data, hop_headers), here, foreign)
        status = response.status_code
        if status in success_status:
            logger.debug("%s: HTTP %s", here, status)
            return f"HTTP {status}"
        if status not in REDIRECTS or not response.headers.get("Location"):
            raise status_error(here, response, excerpt)
    raise DeliveryError(
        f"{where}: more than {MAX_REDIRECTS} redirects; the last, HTTP {status}, points to "
        f"{mask_url(_location(response))!r}"
    )


def _not_followed(
    where: str,
    request: tuple[str, str],
    response: Any,
    excerpt: str,
    follow_redirects: bool,
) -> HTTPStatusError:
    method, url = request
    status = response.status_code
    if status == 303 and follow_redirects:
        advice = (
            f"that points at a result to fetch, not at a place to send the {method} again; "
            "if the receiver answers 303 once it has handled the request, add 303 to "
            "success_status"
        )
    else:
        advice = (
            "redirects are not followed: set `follow_redirects: true` to follow them (the "
            "method and body are kept), or point `url` at the new location"
        )
    target = urljoin(url, _location(response))
    message = (
        f"{where}: HTTP {status} {response.reason or ''}".rstrip()
        + f", redirecting to {mask_url(target)!r}; {advice}"
    )
    return HTTPStatusError(message, status=status, body=excerpt)


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port): where credentials may go."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, parts.hostname or "", parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return url, "", 0  # matches no other url: credentials stay behind


def _location(response: Any) -> str:
    location = response.headers.get("Location") or ""
    try:
        # http.client reads headers as latin-1; a non-ASCII Location is far more often UTF-8.
        return location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return location


def _redirect_target(url: str, response: Any, where: str) -> str:
    """The url ``response`` redirects to; :class:`DeliveryError` if it is no http(s) URL."""
    location = _location(response)
    target = urljoin(url, location)
    problem = url_problem(target)
    if problem is not None:
        raise DeliveryError(
            f"{where}: HTTP {response.status_code} redirects to {mask_url(location)!r}, which "
            f"{problem}"
        )
    return target


def _without_credentials(headers: Headers) -> HTTPHeaderDict:
    kept = HTTPHeaderDict(headers)  # a copy whose names match in any case
    for name in CREDENTIAL_HEADERS:
        kept.pop(name, None)
    return kept
