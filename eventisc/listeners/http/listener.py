"""The ``http`` kind's listener: its options, the request it renders for an event, and the
delivery of that request.

The listener sends through urllib3 (its :class:`~.pool.PoolHolder`), or through requests (a
:class:`~.session.SessionHolder`) when one of its ``requests_kwargs`` only requests honours;
within a deadline for the whole attempt; it reads the answer's body within
``max_response_bytes``, follows redirects itself (:mod:`.redirects`), checks each request's
host when the url takes it from event data (:mod:`.hosts`) and translates whatever fails
below into eventisc's errors (:mod:`.errors`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from urllib3 import HTTPHeaderDict

from ...cloudevents import (
    JSON_DATA_TYPE,
    PAYLOAD_KEY,
    STRUCTURED_TYPE,
    CloudEvents,
    http_headers,
    is_json_type,
    structured,
)
from ...errors import ConfigError, DeliveryError, DeliveryTimeout, TemplateError
from ...masking import MASK
from ...notification import Notification, new_id
from ...template import has_fields
from ...tracing import headers as trace_headers
from ...webhooks import SIGNATURE_HEADER, Signer
from ..base import FilterLike, Listener, mask_url, missing_driver
from .connection import Client, Headers, Request, attempt_over, drain, start_attempt
from .errors import status_error, translate_error
from .hosts import HostGuard, host_is_templated
from .options import (
    DEADLINE_READS,
    DEFAULT_IDEMPOTENCY_HEADER,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    HTTP_SCHEMA,
    METHODS,
    check_header_name,
    check_url,
    check_url_start,
    form_encode,
    may_be_mapping,
    needs_requests,
    parse_byte_count,
    parse_idempotency_header,
    parse_seconds,
    parse_statuses,
    parse_timeout,
    requests_options,
    set_header,
    take_alias,
)
from .pool import DEFAULT_HEADERS, PoolHolder
from .redirects import REDIRECTS, SAFE_METHODS, follow, followed_statuses
from .secrets import secret_fields

__all__ = ["HttpListener"]

logger = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
FORM_TYPE = "application/x-www-form-urlencoded"
#: The Content-Type of a structured CloudEvent.
CLOUDEVENT_TYPE = f"{STRUCTURED_TYPE}; charset=utf-8"


class HttpListener(Listener):
    """Sends each event as an HTTP request (JSON or form body) and checks the status.

    Each listener owns its urllib3 pools (keep-alive, pools sized for concurrent triggers),
    or, when a ``requests_kwargs`` option only requests honours is given, a requests session
    (no cookies kept between notifications); created on first use, again after :meth:`close`
    and in a forked child.
    """

    kind = "http"
    schema = HTTP_SCHEMA

    def __init__(
        self,
        event_name: Any = None,
        url: str | None = None,
        method: str = "post",
        query_kwargs: Mapping[str, Any] | None = None,
        data: Any = None,
        requests_kwargs: Mapping[str, Any] | None = None,
        request_format: str = "json",
        filter: FilterLike = None,
        *,
        headers: Mapping[str, Any] | None = None,
        idempotency_header: str | None = DEFAULT_IDEMPOTENCY_HEADER,
        timeout: float | tuple[float, float] | list[float] | None = None,
        success_status: list[int | str] | None = None,
        follow_redirects: bool | None = None,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
        signing: Mapping[str, Any] | None = None,
        disable_on_gone: bool = True,
        allow_hosts: list[str] | None = None,
        format: str | None = None,
        cloudevents_mode: str | None = None,
        source: str | None = None,
        subject: Any = None,
        **common: Any,
    ):
        super().__init__(event_name, filter, **common)
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise ConfigError(
                f"unknown method {method!r}; use one of {', '.join(METHODS)}", "method"
            )
        self.method: str = method.upper()
        if request_format not in ("json", "form"):
            raise ConfigError(
                f"request_format is {request_format!r}; use `json` or `form`", "request_format"
            )
        self.request_format: str = request_format
        self._url, self._url_has_query, self._url_is_constant = self._compile_url(url)
        guard = HostGuard.from_option(allow_hosts)
        #: Checks each request's host when the url takes it from event data; None: a host
        #: written in the config is trusted, at no cost.
        self._guard: HostGuard | None = (
            guard if not self._url_is_constant and host_is_templated(str(url)) else None
        )
        self._query = self._compile_mapping(query_kwargs, "query_kwargs")
        self._headers = self._compile_mapping(headers, "headers")
        for name in headers or ():
            check_header_name(name, "headers")
        if request_format == "form" and data is not None and not may_be_mapping(data):
            raise ConfigError(
                "with `request_format: form`, data must be a mapping (or one template field "
                f"rendering to a mapping), not {data!r}",
                "data",
            )
        self._data = self.template(data, "data") if data is not None else None
        options = dict(requests_kwargs or {})
        self._set_sending_options(options, timeout, follow_redirects, deadline, max_response_bytes)
        self._static_headers, send_kwargs = requests_options(options)
        #: The header each request carries the notification id in; None: no such header.
        self.idempotency_header: str | None = parse_idempotency_header(
            idempotency_header, headers or (), self._static_headers
        )
        self.success_status: frozenset[int] = parse_statuses(success_status)
        if not isinstance(disable_on_gone, bool):
            raise ConfigError(f"must be true or false, not {disable_on_gone!r}", "disable_on_gone")
        #: Whether a 410 Gone answer disables the listener (see eventisc.delivery.gone).
        self.disable_on_gone = disable_on_gone
        self._client: Client = self._new_client(send_kwargs)
        #: Signs each attempt (``webhook-*`` headers); None: requests are not signed.
        self._signer: Signer | None = (
            Signer.from_option(signing, "signing") if signing is not None else None
        )
        self.register_secrets(secret_fields(url, headers, requests_kwargs, signing))
        #: The CloudEvents settings (``format: cloudevents``); None: plain requests.
        self.cloudevents: CloudEvents | None = CloudEvents.from_options(
            format, cloudevents_mode, source, subject, self.template
        )

    def _new_client(self, send_kwargs: dict[str, Any]) -> Client:
        """The client the listener sends through, decided once: urllib3 unless an option only
        requests honours is given."""
        reason = needs_requests(send_kwargs)
        if reason is None:
            base = HTTPHeaderDict(DEFAULT_HEADERS)
            base.update(self._static_headers)  # any case: a static header replaces a default
            self._base_headers: dict[str, str] = dict(base.items())
            self._base_names = _lower_names(self._base_headers)
            return PoolHolder(send_kwargs, self.timeout)
        logger.debug("listener %s sends through requests (it is given %s)", self.name, reason)
        self._base_headers = dict(self._static_headers)  # the session adds its own
        self._base_names = _lower_names(self._base_headers)
        try:
            from .session import SessionHolder
        except ImportError as exc:
            raise ConfigError(
                f"{missing_driver('http', 'requests', 'http')} (requests_kwargs gives {reason})",
                "requests_kwargs",
            ) from exc
        return SessionHolder(send_kwargs, self.timeout)

    def _set_sending_options(
        self,
        options: dict[str, Any],
        timeout: Any,
        follow_redirects: Any,
        deadline: Any,
        max_response_bytes: Any,
    ) -> None:
        """Set timeout, deadline, max_response_bytes and follow_redirects; take their aliases
        (``requests_kwargs.timeout``, ``.allow_redirects``) out of ``options``."""
        timeout, path = take_alias(options, "timeout", timeout)
        #: Seconds to connect, and to wait for each read: one number or (connect, read).
        self.timeout = parse_timeout(timeout, path) if path else DEFAULT_TIMEOUT
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
        #: Seconds one attempt may take in all (connect, send, answer, redirects).
        self.deadline: float = (
            parse_seconds(deadline, "deadline")
            if deadline is not None
            else max(DEADLINE_READS * read, connect + read)
        )
        #: Bytes of a response body read at most.
        self.max_response_bytes: int = (
            parse_byte_count(max_response_bytes, "max_response_bytes")
            if max_response_bytes is not None
            else DEFAULT_MAX_RESPONSE_BYTES
        )
        follow, path = take_alias(options, "allow_redirects", follow_redirects)
        if path and not isinstance(follow, bool):
            raise ConfigError(f"must be true or false, not {follow!r}", path)
        #: Whether redirects are followed (by default only for GET and HEAD).
        self.follow_redirects: bool = follow if path else self.method in SAFE_METHODS
        self._follow = followed_statuses(self.method, self.follow_redirects)

    def _compile_url(self, url: Any) -> tuple[Any, bool, bool]:
        """The url's template, whether it places the query itself, whether it is constant.

        A constant url is checked here as requests will send it; a templated one as far as
        its constant start goes (scheme, and host and port when no field is in them).
        """
        if not isinstance(url, str) or not url:
            raise ConfigError("an http listener needs a `url` (a string)", "url")
        constant = not has_fields(url)
        if constant:
            check_url(url, ConfigError, "url", full=True)
        else:
            check_url_start(url)
        try:
            return self.template(url, "url"), False, constant
        except ConfigError:
            # Only a url that uses `query_string` compiles with it: then it places the query.
            return self.template(url, "url", names=("query_string",)), True, constant

    def _compile_mapping(self, value: Any, path: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ConfigError(f"must be a mapping, not {type(value).__name__}", path)
        return self.template(dict(value), path)

    # -- render (pure) ------------------------------------------------------------------------

    def render(self, event_name: str, event_data: Any) -> Notification:
        """Render the request: method, url (query included), headers and the encoded body;
        with ``format: cloudevents``, as a CloudEvent (:mod:`eventisc.cloudevents`).

        Raises :class:`TemplateError` when a template fails or a value cannot be encoded.
        """
        ctx: dict[str, Any] = {"event_name": event_name, "event_data": event_data}
        url = self._render_url(ctx)
        headers: dict[str, str] = {}
        body = None
        if self._data is not None:
            value = self._data.render(ctx)
            if self.request_format == "json":
                body = self.json_encoding.encode(value, "the body (data)")
                headers["Content-Type"] = JSON_TYPE
            else:
                body = form_encode(value, "data")
                headers["Content-Type"] = FORM_TYPE
        if self._headers is not None:
            for name, value in self._headers.render(ctx).items():
                set_header(headers, name, value)
        payload = {"method": self.method, "url": url, "headers": headers, "body": body}
        if self.cloudevents is not None:
            return self._cloudevent(self.cloudevents, event_name, ctx, payload)
        return Notification(self.name, self.kind, event_name, payload)

    def _cloudevent(
        self, settings: CloudEvents, event_name: str, ctx: dict[str, Any], payload: dict[str, Any]
    ) -> Notification:
        """The request as a CloudEvent, its attributes kept in the payload (``cloudevent``):
        in ``ce-*`` headers with the body as data (binary), or as the JSON body (structured).
        """
        headers, body = payload["headers"], payload["body"]
        datacontenttype = None
        if body is not None:
            name = next((k for k in headers if k.lower() == "content-type"), None)
            datacontenttype = headers.pop(name) if name is not None else None
            if datacontenttype == JSON_TYPE:
                datacontenttype = JSON_DATA_TYPE  # JSON is UTF-8 by definition
        notification_id = new_id()
        attributes = settings.attributes(notification_id, event_name, ctx, datacontenttype)
        if settings.mode == "binary":
            if datacontenttype:
                headers["Content-Type"] = datacontenttype
            headers.update(http_headers(attributes))
        else:
            json_data = self.request_format == "json" and is_json_type(datacontenttype)
            payload["body"] = structured(attributes, body, json_data)
            headers["Content-Type"] = CLOUDEVENT_TYPE
        payload[PAYLOAD_KEY] = attributes
        return Notification(self.name, self.kind, event_name, payload, notification_id)

    def _render_url(self, ctx: dict[str, Any]) -> str:
        query = ""
        if self._query is not None:
            query = form_encode(self._query.render(ctx), "query_kwargs")
        if self._url_has_query:
            url = self._url.render({**ctx, "query_string": query})
        else:
            url = self._url.render(ctx)
            if query and isinstance(url, str):
                url, hash_, fragment = url.partition("#")
                url = f"{url}{'&' if '?' in url else '?'}{query}{hash_}{fragment}"
        if not isinstance(url, str):
            raise TemplateError(f"url renders to a {type(url).__name__}, not a string")
        if not self._url_is_constant:  # a constant one was checked at load (and a query is safe)
            check_url(url, TemplateError, "url")
        return url

    # -- deliver (the only I/O) -----------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        """Send the request; return ``"HTTP <status>"`` when the status counts as success.

        The request carries the notification id in the ``idempotency_header`` (if any), the
        same on every attempt; with ``signing``, the ``webhook-*`` headers, signed afresh for
        each attempt over the body as sent. The whole attempt, redirects included, ends by the
        listener's ``deadline``. Raises :class:`HTTPStatusError` for any other status (a
        redirect not followed included), :class:`DeliveryTimeout`, :class:`ConnectError` or
        :class:`DeliveryError` (see :func:`translate_error`): whatever fails inside urllib3 (or
        requests) comes out as one of these. When the url takes its host from event data, a host (or
        redirect target) that resolves to an internal address not in ``allow_hosts`` is a
        :class:`DeliveryError` (not transient), raised before anything is sent.
        """
        payload = notification.payload
        method, url = payload["method"], payload["url"]
        body = payload.get("body")
        data = body.encode("utf-8") if body is not None else None
        # In this order, each replacing a header of the same name: the idempotency header
        # before the rendered ones (a payload that has its own, spooled while the listener's
        # headers named it, keeps it), the trigger's trace (eventisc.tracing), and the
        # signature: per attempt, a fresh timestamp over the exact bytes sent, same id.
        extras = (
            {self.idempotency_header: notification.id}
            if self.idempotency_header is not None
            else _NONE,
            payload.get("headers") or _NONE,
            trace_headers(notification),
            self._signer.headers(notification.id, data) if self._signer is not None else _NONE,
        )
        headers = _merged(self._base_headers, self._base_names, extras)
        # Bounds every step of this thread's connections until the answer (and redirects).
        start_attempt(self.deadline)
        request: Request = (method, url, data, headers)
        response, excerpt = self._exchange(request)
        status = response.status_code
        if status in self.success_status:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: HTTP %s", _where(request), status)
            return f"HTTP {status}"
        where = _where(request)
        if status in REDIRECTS and response.headers.get("Location"):
            return follow(
                self._exchange,
                request,
                response,
                excerpt,
                where,
                followed=self._follow,
                success_status=self.success_status,
            )
        raise status_error(where, response, excerpt)

    def _exchange(
        self, request: Request, where: str | None = None, foreign: bool = False
    ) -> tuple[Any, str]:
        """Send ``request``; return the response (closed) and the start of its body, read
        within ``max_response_bytes``. Raises the eventisc error when no answer came.

        ``where`` names the request in errors and logs (None: ``METHOD url``, the url masked,
        worked out only when needed). ``foreign``: the url is on another origin than the
        listener's request was for (a redirect): the configured credentials are left out.
        """
        if self._guard is not None:
            # Every hop: a redirect may point anywhere.
            self._guard.check(request[1], where or _where(request))
        try:
            # The body is left unread: read here, bounded, after checking the status.
            response = self._client.send(request, foreign)
        except Exception as exc:
            raise self._failure(exc, where or _where(request)) from exc
        with response:
            try:
                excerpt = drain(response, self.max_response_bytes)
            except Exception as exc:
                # The status is what the receiver decided; a slow or broken body does not
                # change it (a 2xx sent again would be a duplicate).
                logger.warning(
                    "%s, while reading the body of an HTTP %s answer (the status stands)",
                    self._failure(exc, where or _where(request)),
                    response.status_code,
                )
                excerpt = ""
        return response, excerpt

    def _failure(self, exc: Exception, where: str) -> DeliveryError:
        # Every wait of an attempt ends by its deadline: a failure at or past the deadline is
        # the deadline's doing, whichever exception the driver wrapped it in.
        if attempt_over():
            return DeliveryTimeout(
                f"{where}: did not finish within {self.deadline:g} s (the listener's `deadline` "
                "for connecting, sending and reading the answer)"
            )
        return translate_error(exc, where, timeout=self.timeout)

    def dry_run(self, notification: Notification) -> bool:
        """Show the request as :meth:`deliver` would send it: with its idempotency header and
        its ``webhook-*`` headers when it is signed (the signature masked)."""
        payload = notification.payload
        headers = dict(payload.get("headers") or {})
        if self.idempotency_header is not None:
            headers = {self.idempotency_header: notification.id, **headers}
        if self._signer is not None:
            body = payload.get("body")
            signed = self._signer.headers(notification.id, body.encode() if body else None)
            headers.update(signed, **{SIGNATURE_HEADER: MASK})
        if headers != (payload.get("headers") or {}):
            notification = dataclasses.replace(
                notification, payload={**payload, "headers": headers}
            )
        return super().dry_run(notification)

    # -- lifecycle ------------------------------------------------------------------------------

    def describe(self) -> str:
        """``POST http://host/path`` with any password in the url masked."""
        return f"{self.method} {mask_url(str(self._url.source))}"

    def close(self) -> None:
        """Close the client's connections; the next delivery opens new ones."""
        self._client.close()


#: No headers to add.
_NONE: Mapping[str, str] = {}


def _where(request: Request) -> str:
    """``METHOD url``, any password in the url masked: how errors and logs name a request."""
    return f"{request[0]} {mask_url(request[1])}"


def _lower_names(headers: Mapping[str, str]) -> frozenset[str] | None:
    """The names in ``headers``, in lower case; None when a name is there in two cases."""
    names = frozenset(name.lower() for name in headers)
    return names if len(names) == len(headers) else None


def _merged(
    base: dict[str, str], names: frozenset[str] | None, extras: tuple[Mapping[str, str], ...]
) -> Headers:
    """``base`` updated with each of ``extras`` in turn, a header replacing one of the same
    name in any case, as an HTTPHeaderDict does (``names``: :func:`_lower_names` of ``base``).

    A plain dict, cheaper to build and to send, when no name comes in two cases (the usual
    case); else the HTTPHeaderDict.
    """
    if names is not None:
        headers = base.copy()
        added: set[str] = set()
        for extra in extras:
            for name, value in extra.items():
                if name not in headers:
                    lower = name.lower()
                    if lower in names or lower in added:
                        return _merged(base, None, extras)  # in another case: replace it
                    added.add(lower)
                headers[name] = value
        return headers
    merged = HTTPHeaderDict(base)
    for extra in extras:
        merged.update(extra)
    return merged
