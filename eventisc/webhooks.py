"""Signed HTTP requests, as Standard Webhooks (https://www.standardwebhooks.com/) defines them.

The ``http`` kind signs what it sends with a :class:`Signer` (its ``signing`` option); a
receiver checks a request with :func:`verify`, with nothing but the standard library for
``whsec_`` secrets.

Each signed request carries three headers: ``webhook-id`` (the notification's id, the same on
every attempt), ``webhook-timestamp`` (Unix seconds of the attempt) and ``webhook-signature``:
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` per secret, space-separated. A secret
is written ``whsec_<base64 key>``; the key is the base64-decoded part. An ed25519 signing key,
``whsk_<base64 seed>``, signs the same content as ``v1a,<base64 signature>``; its receiver
verifies with the ``whpk_<base64>`` public key. Ed25519 needs cryptography (the ``ed25519``
extra), imported only when such a key is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Union

from .errors import ConfigError, SignatureError

__all__ = [
    "DEFAULT_TOLERANCE",
    "ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Signer",
    "PUBLIC_KEY_PREFIX",
    "SIGNING_KEY_PREFIX",
    "parse_key",
    "verify",
]

#: The header that carries the notification's id.
ID_HEADER = "webhook-id"
#: The header that carries the Unix time (seconds) of the attempt.
TIMESTAMP_HEADER = "webhook-timestamp"
#: The header that carries the signatures, ``v1,<base64>`` (``v1a,`` for ed25519), space-separated.
SIGNATURE_HEADER = "webhook-signature"
#: What a symmetric secret starts with (HMAC-SHA256, ``v1`` signatures).
SECRET_PREFIX = "whsec_"
#: What an ed25519 signing key starts with (``v1a`` signatures; the ``ed25519`` extra).
SIGNING_KEY_PREFIX = "whsk_"
#: What an ed25519 public key starts with: verifies ``v1a`` signatures, cannot make them.
PUBLIC_KEY_PREFIX = "whpk_"
#: Seconds a request's timestamp may be away from the receiver's clock, by default.
DEFAULT_TOLERANCE = 300
_ED25519_BYTES = 32


def _decode(text: str, prefix: str, path: str) -> bytes:
    try:
        raw = base64.b64decode(text[len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the part after `{prefix}` is not valid base64", path) from None
    if not raw:
        raise ConfigError(f"the part after `{prefix}` is empty", path)
    return raw


class _HmacKey:
    """One HMAC-SHA256 key, set up once: each signature copies that state (``HMAC.copy``),
    cheaper than setting up an HMAC per message."""

    __slots__ = ("_hmac",)
    version = "v1"

    def __init__(self, key: bytes):
        self._hmac = hmac.new(key, digestmod=hashlib.sha256)

    def sign(self, content: bytes) -> str:
        mac = self._hmac.copy()
        mac.update(content)
        return base64.b64encode(mac.digest()).decode("ascii")

    def check(self, content: bytes, signature: str) -> bool:
        expected = self.sign(content).encode("ascii")
        return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))

    def __repr__(self) -> str:
        return "<whsec_ key>"


def _ed25519(path: str) -> Any:
    """cryptography's ed25519 module; a :class:`ConfigError` naming the extra without it."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ConfigError(
            f"`{SIGNING_KEY_PREFIX}`/`{PUBLIC_KEY_PREFIX}` (ed25519, v1a) keys need "
            "cryptography: pip install 'eventisc[ed25519]'",
            path,
        ) from None
    return ed25519


class _Ed25519Key:
    """An ed25519 key: a signing key (``whsk_``) signs and verifies, a public key (``whpk_``)
    only verifies."""

    __slots__ = ("_private", "_public")
    version = "v1a"

    def __init__(self, private: Any, public: Any):
        self._private = private
        self._public = public

    @classmethod
    def signing(cls, raw: bytes, path: str) -> _Ed25519Key:
        """From the 32-byte seed, or the seed followed by the 32-byte public key."""
        ed25519 = _ed25519(path)
        if len(raw) not in (_ED25519_BYTES, 2 * _ED25519_BYTES):
            raise ConfigError(
                f"a `{SIGNING_KEY_PREFIX}` key holds 32 bytes (the seed) or 64 (the seed and "
                f"the public key), not {len(raw)}",
                path,
            )
        private = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:_ED25519_BYTES])
        public = private.public_key()
        if len(raw) > _ED25519_BYTES and public.public_bytes_raw() != raw[_ED25519_BYTES:]:
            raise ConfigError(f"the `{SIGNING_KEY_PREFIX}` key's public half does not match", path)
        return cls(private, public)

    @classmethod
    def public(cls, raw: bytes, path: str) -> _Ed25519Key:
        ed25519 = _ed25519(path)
        if len(raw) != _ED25519_BYTES:
            raise ConfigError(f"a `{PUBLIC_KEY_PREFIX}` key holds 32 bytes, not {len(raw)}", path)
        return cls(None, ed25519.Ed25519PublicKey.from_public_bytes(raw))

    def sign(self, content: bytes) -> str:
        return base64.b64encode(self._private.sign(content)).decode("ascii")

    def check(self, content: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(base64.b64decode(signature, validate=True), content)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"<{PUBLIC_KEY_PREFIX if self._private is None else SIGNING_KEY_PREFIX} key>"


_Key = Union[_HmacKey, _Ed25519Key]


def parse_key(text: Any, path: str = "secret", *, public: bool = False) -> _Key:
    """The key of ``whsec_<base64>`` (HMAC) or ``whsk_<base64>`` (ed25519), and with
    ``public`` of ``whpk_<base64>``; a :class:`ConfigError` at ``path`` otherwise.

    The message never quotes the key.
    """
    if not isinstance(text, str):
        raise ConfigError(f"must be a string ({SECRET_PREFIX}...), not {type(text).__name__}", path)
    if text.startswith(SECRET_PREFIX):
        return _HmacKey(_decode(text, SECRET_PREFIX, path))
    if text.startswith(SIGNING_KEY_PREFIX):
        return _Ed25519Key.signing(_decode(text, SIGNING_KEY_PREFIX, path), path)
    if text.startswith(PUBLIC_KEY_PREFIX):
        if public:
            return _Ed25519Key.public(_decode(text, PUBLIC_KEY_PREFIX, path), path)
        raise ConfigError(
            f"a `{PUBLIC_KEY_PREFIX}` public key only verifies; sign with its "
            f"`{SIGNING_KEY_PREFIX}` key",
            path,
        )
    also = f", or `{PUBLIC_KEY_PREFIX}`" if public else ""
    raise ConfigError(
        f"a signing secret starts with `{SECRET_PREFIX}` (or `{SIGNING_KEY_PREFIX}` for ed25519"
        f"{also})",
        path,
    )


def _keys(secrets: Any, path: str, public: bool = False) -> tuple[_Key, ...]:
    if isinstance(secrets, str):
        return (parse_key(secrets, path, public=public),)
    if not isinstance(secrets, Iterable) or isinstance(secrets, (bytes, Mapping)):
        raise ConfigError("give a secret (a string) or a list of secrets", path)
    keys = tuple(parse_key(s, f"{path}[{i}]", public=public) for i, s in enumerate(secrets))
    if not keys:
        raise ConfigError("give at least one secret", path)
    return keys


def _content(msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


class Signer:
    """Signs requests with one or more secrets (several while they are rotated).

    Built when the config is loaded (:meth:`from_option` raises :class:`ConfigError` for a
    bad secret); :meth:`headers` is called per attempt. The secrets are never shown.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[_Key]):
        self._keys = tuple(keys)

    @classmethod
    def from_option(cls, option: Any, path: str = "signing") -> Signer:
        """The signer of an http listener's ``signing`` option: ``{secret: "whsec_..."}`` or
        ``{secrets: ["whsec_...", ...]}``."""
        if not isinstance(option, Mapping):
            raise ConfigError("must be a mapping with `secret` or `secrets`", path)
        if ("secret" in option) == ("secrets" in option):
            raise ConfigError("give either `secret` or `secrets` (a list), not both", path)
        if "secret" in option:
            return cls((parse_key(option["secret"], f"{path}.secret"),))
        secrets = option["secrets"]
        if isinstance(secrets, str):
            raise ConfigError("must be a list of secrets (or use `secret`)", f"{path}.secrets")
        return cls(_keys(secrets, f"{path}.secrets"))

    def headers(
        self, msg_id: str, body: bytes | None, timestamp: int | None = None
    ) -> dict[str, str]:
        """The three headers of one attempt sending ``body`` (None: an empty body)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        content = _content(msg_id, stamp, body or b"")
        return {
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: " ".join(f"{key.version},{key.sign(content)}" for key in self._keys),
        }

    def __repr__(self) -> str:
        return f"Signer(<{len(self._keys)} secret(s)>)"


def _header(headers: Mapping[str, Any], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    if value is None or value == "":
        raise SignatureError(f"the request has no {name} header")
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _check_timestamp(text: str, tolerance: float) -> None:
    try:
        stamp = int(text)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a number of seconds") from None
    offset = time.time() - stamp
    if offset > tolerance:
        raise SignatureError(f"{TIMESTAMP_HEADER} is too old ({offset:.0f} s ago)")
    if offset < -tolerance:
        raise SignatureError(f"{TIMESTAMP_HEADER} is too far in the future ({-offset:.0f} s)")


def _matches(keys: Iterable[_Key], content: bytes, header: str) -> bool:
    given = [part.partition(",") for part in header.split()]
    found = False
    for key in keys:
        for version, _, signature in given:
            # Every pair is compared (no early exit): the time taken says nothing of which.
            if version == key.version:
                found |= key.check(content, signature)
    return found


def verify(
    secret_or_secrets: str | Iterable[str],
    headers: Mapping[str, Any],
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Any:
    """Check a signed request; return its body parsed as JSON (or the text when not JSON).

    ``secret_or_secrets``: ``whsec_...`` (or ``whpk_...``, ``whsk_...`` for ed25519), or
    several (any one may match, while rotating);
    ``headers``: any mapping (names looked up in any case); ``body``: the raw body, as
    received. Raises :class:`SignatureError` when a header is missing, the timestamp is more
    than ``tolerance`` seconds away from now, or no signature matches;
    :class:`ConfigError` when a secret or key cannot be read (ed25519 without cryptography).
    """
    keys = _keys(secret_or_secrets, "secret", public=True)
    msg_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    signatures = _header(headers, SIGNATURE_HEADER)
    _check_timestamp(stamp, tolerance)
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if not _matches(keys, _content(msg_id, stamp, raw), signatures):
        raise SignatureError("no signature in webhook-signature matches the secret(s)")
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
