"""Reading configuration: YAML or JSON files, file objects, dicts and the environment.

Everything about a config is checked here, when it is loaded: the schema, each listener's kind
and options, regexes, templates and filter expressions. Errors are :class:`ConfigError`
naming the file and the path of the offending value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import IO, Any, Union

from .errors import ConfigError
from .schema import CONFIG_SCHEMA, validate

__all__ = ["ConfigSource", "env_flag", "read_config", "validate_config"]

ConfigSource = Union[str, "os.PathLike[str]", IO[str], IO[bytes], Mapping[str, Any]]

_TRUE = {"y", "yes", "true", "1", "on"}


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` says yes (y/yes/true/1/on, any case)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def read_config(source: ConfigSource) -> tuple[dict[str, Any], str | None]:
    """Read a config from a path, a file object or a mapping.

    Paths ending in ``.yaml``/``.yml`` are YAML, other paths JSON (as in event-isc); a file
    object is read as JSON, else as YAML. Returns the mapping and a name for messages.
    """
    if isinstance(source, Mapping):
        return dict(source), None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = str(name) if isinstance(name, str) else "<config>"
        text = source.read()
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        yaml_first = label.endswith((".yaml", ".yml"))
        return _parse(text, label, "yaml" if yaml_first else "any"), label
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError("config file not found", source=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=path) from None
    fmt = "yaml" if path.endswith((".yaml", ".yml")) else "json"
    return _parse(text, path, fmt), path


def _parse(text: str, label: str, fmt: str) -> dict[str, Any]:
    if fmt in ("json", "any"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if fmt == "json":
                raise ConfigError(
                    f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg} "
                    "(files not ending in .yaml or .yml are read as JSON)",
                    source=label,
                ) from None
        else:
            return _top_level(data, label)
    import yaml

    # libyaml's loader when PyYAML was built with it: several times faster on big configs.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML{where}: {problem}", source=label) from None
    return _top_level(data, label)


def _top_level(data: Any, label: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the config must be a mapping with `listeners`, not {type(data).__name__}",
            source=label,
        )
    return data


def validate_config(config: Mapping[str, Any], source: str | None = None) -> None:
    """Check the top-level keys (listeners are checked one by one when they are built)."""
    validate(config, CONFIG_SCHEMA, "", "configs", source)
