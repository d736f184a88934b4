"""The public API surface is what the README documents."""

from __future__ import annotations

import re
from pathlib import Path

import eventisc

README = Path(__file__).resolve().parent.parent / "README.md"


def test_exported_members_are_the_documented_ones():
    text = README.read_text()
    section = text.split("## API reference", 1)[1]
    documented = set(re.findall(r"`([A-Za-z_]+)`", section)) - {"eventisc", "__all__"}
    assert documented == set(eventisc.__all__)
    for name in eventisc.__all__:
        assert hasattr(eventisc, name), name


def test_event_isc_api_is_present():
    for name in ("trigger", "init_default_app", "create_app", "get_current_app", "heartbeat"):
        assert callable(getattr(eventisc, name))
    assert issubclass(eventisc.ConfigError, ValueError)
    assert eventisc.Listener.from_dict is not None and eventisc.Filter.from_dict is not None


def test_package_is_typed():
    assert (Path(eventisc.__file__).parent / "py.typed").exists()
