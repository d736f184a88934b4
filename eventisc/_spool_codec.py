"""How the spool stores a notification's payload: JSON, with bytes kept exactly.

Bytes (a RabbitMQ body) become ``{"$bytes": base64}``; a user dict that would read back as such
a tag is written as ``{"$dict": [[key, value], ...]}``. Everything else is written as
:func:`eventisc.encoding.dumps` writes it (a datetime comes back as its ISO string).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .encoding import dumps
from .errors import TemplateError

__all__ = ["decode_payload", "encode_payload"]

_TAGS = ("$bytes", "$dict")
_BYTES = (bytes, bytearray, memoryview)


def _tag(value: Any) -> Any:
    # Bytes become {"$bytes": base64}; a user dict that would read back as a tag is written as
    # {"$dict": [[key, value]]} (a list, so decoding its inside cannot mistake it for a tag).
    if isinstance(value, dict):
        out = {key: _tag(item) for key, item in value.items()}
        if len(out) == 1 and next(iter(out)) in _TAGS:
            return {"$dict": [[key, item] for key, item in out.items()]}
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_tag(item) for item in value]
    if isinstance(value, _BYTES):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    return value


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$bytes" in obj:
            return base64.b64decode(obj["$bytes"])
        if "$dict" in obj:
            return {key: item for key, item in obj["$dict"]}
    return obj


def encode_payload(payload: dict[str, Any], listener: str | None = None) -> str:
    """The JSON text stored for ``payload``; raises TemplateError naming ``listener``."""
    text = None
    if not any(isinstance(value, _BYTES) for value in payload.values()):  # a RabbitMQ body
        try:
            text = dumps(payload)  # the common case: no bytes, no "$" keys, one C-speed pass
        except TypeError:
            pass  # bytes deeper down (or an object JSON cannot hold: the second pass says)
        except ValueError as exc:
            raise TemplateError(f"cannot store the payload in the spool: {exc}", listener) from None
    if text is None or '"$' in text:
        try:
            text = dumps(_tag(payload))
        except RecursionError:
            raise TemplateError(
                "cannot store the payload in the spool: the value contains itself", listener
            ) from None
        except (TypeError, ValueError) as exc:
            raise TemplateError(f"cannot store the payload in the spool: {exc}", listener) from None
    return text


def decode_payload(text: str) -> dict[str, Any]:
    """The payload stored as ``text`` (bytes restored, see :func:`encode_payload`)."""
    payload: dict[str, Any] = json.loads(text, object_hook=_untag if '"$' in text else None)
    return payload
