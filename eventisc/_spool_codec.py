"""How the spool and the outbox store a notification's payload: JSON, with bytes kept exactly
and secrets left out.

Bytes (a RabbitMQ body) become ``{"$bytes": base64}``; a string (or bytes) holding a secret
value becomes ``{"$secret": [literal, [reference], literal, ...]}`` (see
:mod:`eventisc.secret_values`: the row keeps ``env:TOKEN``, and the value the loaded config has
is put back when it is read); a user dict that would read back as such a tag is written as
``{"$dict": [[key, value], ...]}``. Everything else is written as
:func:`eventisc.encoding.dumps` writes it (a datetime comes back as its ISO string).

The notification's trace context (``Notification.trace``), when it has one, is kept in the same
object under the key ``$trace`` (no kind's payload has a key starting with ``$``);
:func:`pop_trace` takes it back out. Rows written without one read as before.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .encoding import dumps, find_problem
from .errors import TemplateError
from .secret_values import lookup, registered, split

__all__ = ["TRACE_KEY", "decode_payload", "encode_payload", "pop_trace"]

#: The key of the stored trace context.
TRACE_KEY = "$trace"

_TAGS = ("$bytes", "$dict", "$secret")
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
    if isinstance(value, (str, bytes)) and registered():
        parts = split(value)
        if parts is not None:
            return {"$secret": [part if isinstance(part, list) else _tag(part) for part in parts]}
    if isinstance(value, _BYTES):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    return value


def _unseal(parts: Any) -> str | bytes:
    """The string (or bytes) a ``$secret`` tag stands for, with today's secret values."""
    if not isinstance(parts, list) or not parts or isinstance(parts[0], list):
        raise ValueError("a $secret tag that is not a list of parts")
    as_bytes = isinstance(parts[0], bytes)
    out: list[Any] = []
    for part in parts:
        if isinstance(part, list):
            try:
                value = lookup(str(part[0]))
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None
            out.append(value.encode() if as_bytes else value)
        else:
            out.append(part)
    try:
        return b"".join(out) if as_bytes else "".join(out)
    except TypeError:
        raise ValueError("a $secret tag mixing text and bytes") from None


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$bytes" in obj:
            try:
                # validate: the encoder writes strict base64, so anything else is damage
                return base64.b64decode(obj["$bytes"], validate=True)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"a $bytes tag without valid base64 ({exc})") from None
        if "$secret" in obj:
            return _unseal(obj["$secret"])
        if "$dict" in obj:
            try:
                return {key: item for key, item in obj["$dict"]}
            except (TypeError, ValueError):
                raise ValueError("a $dict tag that is not a list of [key, value] pairs") from None
    return obj


def encode_payload(
    payload: dict[str, Any], listener: str | None = None, trace: dict[str, str] | None = None
) -> str:
    """The JSON text stored for ``payload`` (and ``trace``, the notification's trace context);
    raises TemplateError naming ``listener``."""
    text = _encode(payload, listener)
    if not trace:
        return text
    head = '{"' + TRACE_KEY + '": ' + json.dumps(trace)
    return head + ("}" if text[1:].lstrip().startswith("}") else ", " + text[1:])


def pop_trace(payload: dict[str, Any]) -> dict[str, str] | None:
    """Take the stored trace context out of a decoded payload: a dict of strings, else None."""
    trace = payload.pop(TRACE_KEY, None)
    if isinstance(trace, dict) and all(isinstance(v, str) for v in trace.values()):
        return trace
    return None


def _encode(payload: dict[str, Any], listener: str | None) -> str:
    text = None
    # A RabbitMQ body (bytes), or secrets to find, take the walk of _tag.
    if not registered() and not any(isinstance(value, _BYTES) for value in payload.values()):
        try:
            # The common case: no bytes, no "$" keys, one C-speed pass.
            text = dumps(payload, strict=False)
        except TypeError:
            pass  # bytes deeper down (or an object JSON cannot hold: the second pass says)
        except ValueError as exc:
            raise TemplateError(f"cannot store the payload in the spool: {exc}", listener) from None
    if text is None or '"$' in text:
        try:
            text = dumps(_tag(payload), strict=False)
        except RecursionError:  # in _tag: a cycle, or nested too deeply
            problem = find_problem(payload, strict=False) or "the value is nested too deeply"
            raise TemplateError(
                f"cannot store the payload in the spool: {problem}", listener
            ) from None
        except (TypeError, ValueError) as exc:
            raise TemplateError(f"cannot store the payload in the spool: {exc}", listener) from None
    return text


def decode_payload(text: str) -> dict[str, Any]:
    """The payload stored as ``text`` (bytes restored, see :func:`encode_payload`).

    Raises ValueError saying what is wrong when ``text`` is not what :func:`encode_payload`
    writes: not JSON, a ``$bytes`` or ``$dict`` tag that is damaged, not a JSON object.
    """
    try:
        payload = json.loads(text, object_hook=_untag if '"$' in text else None)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    if not isinstance(payload, dict):
        raise ValueError(f"not a JSON object but {type(payload).__name__} {text[:40]!r}")
    return payload
