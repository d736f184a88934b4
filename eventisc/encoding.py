"""JSON encoding of event data, shared by every kind that sends JSON."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

from .errors import TemplateError

__all__ = ["dumps", "encode"]


def _default(value: Any) -> Any:
    # The same conversions as kombu's JSON serializer, so HTTP, RabbitMQ and Celery agree.
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(
        f"{type(value).__name__} is not JSON serializable; render it with a template "
        "(for example `{event_data['user'].id}`) instead of sending the object"
    )


_encoder = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"))

# The C encoder built once, without the circular-reference bookkeeping JSONEncoder.encode
# redoes per call (half the cost of a small body); a cycle then ends in RecursionError.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_fast = (
    _c_make_encoder(
        None, _default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    if _c_make_encoder is not None
    else None
)


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON; datetimes, dates and times as ISO 8601, Decimals and
    UUIDs as strings, sets as lists. Raises ``TypeError`` naming any other object, and
    ``ValueError`` for a structure that contains itself."""
    if _fast is None or isinstance(value, str):
        return _encoder.encode(value)
    try:
        return "".join(_fast(value, 0))
    except RecursionError:
        raise ValueError("the value contains itself (a circular reference)") from None


def encode(value: Any, what: str = "the body") -> str:
    """Like :func:`dumps`, raising :class:`~eventisc.errors.TemplateError` that names ``what``."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"cannot encode {what} as JSON: {exc}") from None
