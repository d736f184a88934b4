"""The public API surface is what the manual documents (docs/api.md)."""

from __future__ import annotations

import re
from pathlib import Path

import eventisc

API = Path(__file__).resolve().parent.parent / "docs" / "api.md"
SECTION = "## Everything `eventisc` exports"


def _documented() -> list[str]:
    """The names in the first column of the table under :data:`SECTION` in docs/api.md."""
    text = API.read_text()
    assert SECTION in text, f"docs/api.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", section, re.MULTILINE)


def test_exported_members_are_the_documented_ones():
    documented = _documented()
    assert len(documented) == len(set(documented)), "a name is listed twice in docs/api.md"
    missing = sorted(set(eventisc.__all__) - set(documented))
    extra = sorted(set(documented) - set(eventisc.__all__))
    assert not missing and not extra, (
        f"docs/api.md must list exactly eventisc.__all__: not documented {missing}, "
        f"documented but not exported {extra}"
    )
    assert len(eventisc.__all__) == len(set(eventisc.__all__))
    for name in eventisc.__all__:
        assert hasattr(eventisc, name), name


def test_event_isc_api_is_present():
    for name in ("trigger", "init_default_app", "create_app", "get_current_app", "heartbeat"):
        assert callable(getattr(eventisc, name))
    assert issubclass(eventisc.ConfigError, ValueError)
    assert eventisc.Listener.from_dict is not None and eventisc.Filter.from_dict is not None


def test_package_is_typed():
    assert (Path(eventisc.__file__).parent / "py.typed").exists()
