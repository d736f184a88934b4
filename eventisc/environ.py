"""``${VAR}`` in a config: values from the environment, resolved once, when it is loaded.

Any string of a config may hold ``${VAR}`` (the variable's value; unset is an error) or
``${VAR:-default}`` (the default when the variable is unset or empty, as in a shell); ``$${``
writes a literal ``${``. ``VAR`` is a name of letters, digits and ``_`` not starting with a
digit; anything else after ``${`` (``${event_data['price']}``: a ``$`` before a template field)
is left as it is. It is not a template: the value is read when the config is loaded, never per
event, so it costs nothing when events are triggered.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["expand"]

_REFERENCE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$\{")


def expand(value: Any, path: str = "", environ: Mapping[str, str] | None = None) -> Any:
    """``value`` with every ``${VAR}`` in its strings replaced (mappings and lists are copied
    as they are walked); a ConfigError naming the variable and ``path`` (``listeners[0].url``)
    for a variable that is unset and has no default."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return _expand_text(value, path, env) if "${" in value else value
    if isinstance(value, Mapping):
        return {key: expand(item, _join(path, str(key)), env) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item, f"{path}[{index}]", env) for index, item in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _expand_text(text: str, path: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if name is None or escaped:  # $${ : a literal ${ (and what follows it as written)
            return match.group(0)[1:]
        found = env.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (`${{{name}}}`; give a default with "
            f"`${{{name}:-default}}`, or write `$${{` for a literal `${{`)",
            path or None,
        )

    return _REFERENCE.sub(replace, text)
