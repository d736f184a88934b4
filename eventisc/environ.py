"""``${VAR}`` in a config: values from the environment, resolved once, when it is loaded.

Any string of a config may hold ``${VAR}`` (the variable's value; unset is an error) or
``${VAR:-default}`` (the default when the variable is unset or empty, as in a shell); ``$${``
writes a literal ``${``. ``VAR`` is a name of letters, digits and ``_`` not starting with a
digit; anything else after ``${`` (``${event_data['price']}``: a ``$`` before a template field)
is left as it is. It is not a template: the value is read when the config is loaded, never per
event, so it costs nothing when events are triggered.

A value read from the environment is a secret (:func:`eventisc.secret_values.register`, as
``env:VAR``): it is hidden from everything eventisc shows and left out of stored rows. A
default written in the config is not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .secret_values import register

__all__ = ["Expanded", "expand"]

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


class Expanded(str):
    """A config string whose ``${VAR}`` brought braces in. It is the text as expanded; a
    template compiles :attr:`template_text` instead, where those braces are escaped: a value
    from the environment is never a template field."""

    __slots__ = ("template_text",)
    template_text: str


def _expand_text(text: str, path: str, env: Mapping[str, str]) -> str:
    plain: list[str] = []
    escaped: list[str] = []  # the same, with the braces the values brought in escaped
    end = 0
    for match in _REFERENCE.finditer(text):
        literal, value = text[end : match.start()], _value_of(match, path, env)
        plain += (literal, value)
        escaped += (literal, _escape_braces(match, value))
        end = match.end()
    expanded = "".join(plain) + text[end:]
    template_text = "".join(escaped) + text[end:]
    if template_text == expanded:
        return expanded
    result = Expanded(expanded)
    result.template_text = template_text
    return result


def _escape_braces(match: re.Match[str], value: str) -> str:
    if match.group(2) is None or match.group(1):  # $${: written in the config, not a value
        return value
    return value.replace("{", "{{").replace("}", "}}")


def _value_of(match: re.Match[str], path: str, env: Mapping[str, str]) -> str:
    """What one ``${...}`` (or ``$${``) stands for."""
    escaped, name, default = match.groups()
    if name is None or escaped:  # $${ : a literal ${ (and what follows it as written)
        return match.group(0)[1:]
    found = env.get(name)
    if found is not None and (found or default is None):
        register(f"env:{name}", found)
        return found
    if default is not None:
        return default
    raise ConfigError(
        f"environment variable {name} is not set (`${{{name}}}`; give a default with "
        f"`${{{name}:-default}}`, or write `$${{` for a literal `${{`)",
        path or None,
    )
