"""The system check: ``manage.py check`` (and every command that runs the checks) reports
the config's errors, one ``eventisc.E001`` per mistake, with its path."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from .conf import config_error, outbox_database_mismatch

__all__ = ["check_config"]


@register("eventisc")
def check_config(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``eventisc.E001`` for each mistake of the config the default app failed to build from;
    ``eventisc.W001`` when the outbox table is not in the database Django writes it through."""
    error = config_error()
    if error is None:
        mismatch = outbox_database_mismatch()
        if mismatch is None:
            return []
        return [Warning(mismatch, obj="settings.EVENTISC", id="eventisc.W001")]
    hint = f"The config comes from {error.origin}." if error.origin else None
    messages: list[CheckMessage] = []
    for one in error.errors:
        text = f"{one.path}: {one.message}" if one.path else one.message
        messages.append(Error(text, hint=hint, obj=one.source or "eventisc", id="eventisc.E001"))
    return messages
