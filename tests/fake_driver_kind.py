"""A listener kind module whose driver is not installed."""

from eventisc.listeners.base import missing_driver

try:
    import eventisc_no_such_driver  # noqa: F401
except ImportError as exc:
    raise missing_driver("fake", "eventisc-no-such-driver", "fake") from exc
