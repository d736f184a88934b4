"""The Django app: builds eventisc's default app when Django starts."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["EventiscConfig"]


class EventiscConfig(AppConfig):
    """``"eventisc.contrib.django"`` in ``INSTALLED_APPS``."""

    name = "eventisc.contrib.django"
    label = "eventisc"
    verbose_name = "eventisc"

    def ready(self) -> None:
        """Build the default app from the settings (a config error is kept for ``manage.py
        check`` and logged, never raised here: Django would not start far enough to show it)
        and register the system check."""
        from . import checks  # noqa: F401 - registers the check
        from .conf import setup

        setup()
