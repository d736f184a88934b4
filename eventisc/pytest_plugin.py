"""pytest fixtures for services that use eventisc: ``eventisc_capture`` and ``eventisc_app``.

Registered as the ``eventisc`` plugin (entry-point group ``pytest11``), so installing eventisc
makes the fixtures available. The plugin defines no hooks and no autouse fixtures, and imports
eventisc only when one of its fixtures is used: it costs nothing to test runs that do not.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from .app import App
    from .config import ConfigSource
    from .testing import CapturedEvents

__all__ = ["AppFactory", "eventisc_app", "eventisc_capture"]


class AppFactory(Protocol):
    """The ``eventisc_app`` fixture: ``eventisc_app(config=None, /, **options) -> App``."""

    def __call__(self, config: ConfigSource | None = None, /, **options: Any) -> App: ...


@pytest.fixture
def eventisc_capture() -> Iterator[CapturedEvents]:
    """Capture the default app for the test: events are recorded, nothing is delivered.

    The default app is ``eventisc.get_current_app()`` when the fixture starts (built from
    ``EVENTISC_CONFIG`` if there is none: set the variable before, e.g. in a fixture this test
    requests first). A default app built from the environment before the test changed it
    (your service built it at import, before the test set ``EVENTISC_CONFIG``) is built again
    from the environment the test set, and is the default app during the test. Afterwards
    ``eventisc.default_app`` is put back as it was: an app built for the test is closed and
    dropped, so the next test builds its own.
    """
    import eventisc
    from eventisc.testing import capture

    before = eventisc.default_app
    outdated = before if before is not None and eventisc._outdated(before) else None
    if outdated is not None:
        # Built at import, before the test set its environment: what eventisc.trigger is to
        # use is the app of the test's config (the one before is kept, and put back after).
        eventisc.default_app = eventisc._default_app_from(None, None, None, {})
    app = eventisc.get_current_app()
    try:
        with ExitStack() as stack:
            events = stack.enter_context(capture(app))
            # Code that kept the outdated app triggers on it: capture it too, so nothing is
            # delivered, and say so after the test.
            kept = stack.enter_context(capture(outdated)) if outdated is not None else None
            yield events
        if kept is not None and len(kept):
            warnings.warn(
                f"{len(kept)} event(s) ({', '.join(kept.names()[:5])}) were triggered on the "
                "default app built before the test set its EVENTISC_CONFIG, by code that kept "
                "that app; they were not delivered, and are not in eventisc_capture (use "
                "eventisc.trigger, or eventisc.get_current_app() when the app is needed)",
                stacklevel=1,
            )
    finally:
        current = eventisc.default_app
        if current is not None and current is not app:
            warnings.warn(
                "eventisc.default_app was replaced during the test; the eventisc_capture "
                "fixture captured only the app that was the default when the test started, "
                "so events triggered on the new one were not captured (and were delivered)",
                stacklevel=1,
            )
        eventisc.default_app = before
        for built in dict.fromkeys((app, current)):  # the apps made during the test
            if built is not None and built is not before:
                built.close()


@pytest.fixture
def eventisc_app() -> Iterator[AppFactory]:
    """A factory of apps closed at the end of the test: ``eventisc_app(config, **options)``.

    ``config`` is a path, a file object or a dict, as ``eventisc.create_app(config_file=...)``
    takes; ``options`` are top-level config keys (``name_prefix``, ``listeners``,
    ``raise_errors``...), winning over the file. Capture one with
    ``eventisc.testing.capture(app)``.
    """
    import eventisc

    apps: list[App] = []

    def make(config: ConfigSource | None = None, /, **options: Any) -> App:
        app = eventisc.create_app(config_file=config, **options)
        apps.append(app)
        return app

    yield make
    errors: list[BaseException] = []
    for app in reversed(apps):
        try:
            app.close()
        except Exception as exc:  # close every app even when one fails
            errors.append(exc)
    if errors:
        raise errors[0]
