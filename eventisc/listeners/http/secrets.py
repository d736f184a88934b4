"""The secret fields of an http listener's config, found when it is loaded.

They are registered (:mod:`eventisc.secret_values`) so that nothing eventisc shows or stores
holds them: a credential header written in ``headers:`` (its whole value, when it has no
template field), the password of the url, the password of ``requests_kwargs.auth``, credential
headers of ``requests_kwargs.headers`` and the signing secrets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ...masking import SENSITIVE_HEADERS
from ...template import has_fields

__all__ = ["secret_fields"]


def secret_fields(
    url: Any, headers: Any, requests_kwargs: Any, signing: Any
) -> Iterator[tuple[str, str]]:
    """``(field, value)`` for each secret value the options hold."""
    if isinstance(url, str):
        password = _url_password(url)
        if password:
            yield "url.password", password
    yield from _credential_headers(headers, "headers", constant_only=True)
    if isinstance(requests_kwargs, Mapping):
        yield from _credential_headers(requests_kwargs.get("headers"), "requests_kwargs.headers")
        auth = requests_kwargs.get("auth")
        if isinstance(auth, (list, tuple)) and len(auth) == 2 and isinstance(auth[1], str):
            yield "requests_kwargs.auth", auth[1]
    if isinstance(signing, Mapping):
        secrets = signing.get("secrets") or [signing.get("secret")]
        for index, secret in enumerate(secrets if isinstance(secrets, list) else ()):
            if isinstance(secret, str):
                yield f"signing.secrets[{index}]", secret


def _url_password(url: str) -> str | None:
    """The password written in the url's userinfo (``scheme://user:password@host``)."""
    _scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo, at, _host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1]


def _credential_headers(
    headers: Any, path: str, constant_only: bool = False
) -> Iterator[tuple[str, str]]:
    if not isinstance(headers, Mapping):
        return
    for name, value in headers.items():
        if not isinstance(name, str) or name.lower() not in SENSITIVE_HEADERS:
            continue
        if isinstance(value, str) and not (constant_only and has_fields(value)):
            yield f"{path}.{name}", value
