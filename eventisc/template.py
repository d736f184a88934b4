"""Templates: compiled once when the config is loaded, rendered for each event.

A template is any value of a listener's payload fields. Strings may hold ``{...}`` fields;
dicts, lists and tuples are rendered recursively; other values pass through. A string that is
exactly one field keeps the value's type (``"{event_data['n']}"`` renders to ``43``), mixed text
renders to a string, ``{{`` and ``}}`` are literal braces, and ``!r``/``!s``/``!a`` conversions
and ``:spec`` format specs work as in :meth:`str.format`.

Inside a field is a *safe expression*: a subset of Python checked when the template is compiled
(see :mod:`eventisc.sandbox`). Inside brackets a bare word is a string key, as in
:meth:`str.format`: ``event_data[user]`` is ``event_data['user']``.

Each payload is compiled into a single Python function (one call per render, no interpretation
per event). When it raises, the fields are rendered one by one to name the one that failed.

Templates met at run time rather than in a config (event-isc's ``Listener.format``) are
compiled once each and kept in a :class:`TemplateCache`.
"""

from __future__ import annotations

import ast
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Mapping
from typing import Any

from ._fork import register
from .environ import Expanded
from .errors import ConfigError, TemplateError, located
from .masking import mask_url
from .sandbox import compile_node, describe_error, make_function, parse_expression, problem

__all__ = [
    "BASE_NAMES",
    "Template",
    "TemplateCache",
    "compile_template",
    "has_fields",
    "shown",
    "split_fields",
]

logger = logging.getLogger(__name__)

#: The names every template can use; listener kinds add their own (``query_string``, ...).
BASE_NAMES: tuple[str, ...] = ("event_name", "event_data")

_CONVERSIONS = {"r": ord("r"), "s": ord("s"), "a": ord("a")}
_OPEN = {"(": ")", "[": "]", "{": "}"}


class _Field:
    __slots__ = ("expr", "conversion", "spec", "text")

    def __init__(self, expr: str, conversion: str | None, spec: str | None, text: str):
        self.expr = expr
        self.conversion = conversion
        self.spec = spec
        self.text = text


def shown(text: str) -> str:
    """A template's text as errors show it: the password of a URL in it masked."""
    return mask_url(text) if "@" in text else text


def has_fields(text: str) -> bool:
    """Whether a string is a template at all (holds a field or an escaped brace)."""
    return "{" in text or "}" in text


def _scan_field(text: str, start: int) -> int:
    """Return the index of the ``}`` closing the field opened at ``text[start]``."""
    stack: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            i = _skip_string(text, i)
        elif c in _OPEN:
            stack.append(_OPEN[c])
        elif c in ")]}":
            if not stack:
                if c == "}":
                    return i
                raise ValueError(f"unbalanced `{c}`")
            if stack.pop() != c:
                raise ValueError(f"unbalanced `{c}`")
        i += 1
    raise ValueError("is missing a closing `}`")


def _skip_string(text: str, i: int) -> int:
    """Return the index of the last quote closing the string literal opened at ``text[i]``
    (``'``, ``"`` or a triple quote; backslashes escape), or ``len(text)`` if it is unclosed."""
    c = text[i]
    quote = c * 3 if text.startswith(c * 3, i) else c
    i += len(quote)
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            return i + len(quote) - 1
        else:
            i += 1
    return n


def _split_field(body: str) -> tuple[str, str | None, str | None]:
    """Split ``expr!r:spec`` at its top level into expression, conversion and spec."""
    depth = 0
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c in "'\"":
            i = _skip_string(body, i)
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            split = _split_at(body, i)
            if split is not None:
                return split
        i += 1
    return body, None, None


def _split_at(body: str, i: int) -> tuple[str, str | None, str | None] | None:
    """The split of ``body`` when a top-level ``!r``/``!s``/``!a`` or ``:`` (not ``:=``) is at
    ``body[i]``, else None."""
    c = body[i]
    n = len(body)
    if c == "!" and i + 1 < n and body[i + 1] in _CONVERSIONS:
        if i + 2 == n or body[i + 2] == ":":
            spec = body[i + 3 :] if i + 2 < n else None
            return body[:i], body[i + 1], spec
    elif c == ":" and not body.startswith(":=", i):
        return body[:i], None, body[i + 1 :]
    return None


def split_fields(text: str) -> list[str | _Field]:
    """Split a template string into literal text and fields; raise ValueError when malformed."""
    parts: list[str | _Field] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "{":
            if text.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = _scan_field(text, i)
            body = text[i + 1 : end]
            expr, conversion, spec = _split_field(body)
            if not expr.strip():
                raise ValueError(
                    "has an empty field `{}`: name what to insert, such as `{event_name}` "
                    "(write `{{}}` for literal braces)"
                )
            if spec is not None and ("{" in spec or "}" in spec):
                raise ValueError("has a nested field in a format spec, which is not supported")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Field(expr, conversion, spec, text[i : end + 1]))
            i = end + 1
        elif c == "}":
            if not text.startswith("}}", i):
                raise ValueError("has a single `}`: write `}}` for a literal brace")
            literal.append("}")
            i += 2
        else:
            literal.append(c)
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


class _Leaf:
    """One templated string, kept to name the failing field when a render raises."""

    __slots__ = ("path", "source", "fn")

    def __init__(self, path: str, source: str, fn: Callable[[Mapping[str, Any]], Any]):
        self.path = path
        self.source = source
        self.fn = fn


class _Compiler:
    def __init__(self, names: Collection[str], path: str):
        self.names = frozenset(names)
        self.path = path
        self.consts: dict[str, Any] = {}
        self.leaves: list[_Leaf] = []

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, path or None)

    def const(self, value: Any) -> ast.expr:
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return ast.Constant(value)
        name = f"_K{len(self.consts)}"
        self.consts[name] = value
        return ast.Name(name, ast.Load())

    def value(self, value: Any, path: str) -> tuple[ast.expr, bool]:
        """Return the AST rendering ``value`` and whether it holds any field."""
        if isinstance(value, str):
            return self.string(value, path)
        if isinstance(value, Mapping):
            trap = self.yaml_trap(value, path)
            if trap is not None:
                return self.string(trap, path)
            keys: list[ast.expr | None] = []
            values: list[ast.expr] = []
            templated = False
            for k, v in value.items():
                node, has = self.value(v, _join(path, k))
                keys.append(self.const(k))
                values.append(node)
                templated = templated or has
            if not templated:
                return self.const(value), False
            return ast.Dict(keys=keys, values=values), True
        if isinstance(value, (list, tuple)):
            items = [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
            if not any(has for _, has in items):
                return self.const(value), False
            nodes = [node for node, _ in items]
            if isinstance(value, tuple):
                return ast.Tuple(nodes, ast.Load()), True
            return ast.List(nodes, ast.Load()), True
        return self.const(value), False

    def yaml_trap(self, value: Mapping[Any, Any], path: str) -> str | None:
        """Recognise YAML's reading of an unquoted ``{event_name}`` as ``{"event_name": None}``.

        A one-key mapping with a null value whose key is an expression over the template's
        names is taken as the template it was meant to be, with a warning.
        """
        if len(value) != 1:
            return None
        ((key, val),) = value.items()
        if val is not None or not isinstance(key, str):
            return None
        try:
            tree = parse_expression(key)
        except (ValueError, SyntaxError):
            return None
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        if not used or not used <= self.names:
            return None
        template = "{" + key + "}"
        logger.warning(
            "%s: the unquoted YAML `%s` is a mapping {%r: null}; using it as the template "
            '%r. Quote it ("%s") to say so and silence this warning.',
            located(path) or "template",
            template,
            key,
            template,
            template,
        )
        return template

    def string(self, text: str, path: str) -> tuple[ast.expr, bool]:
        if isinstance(text, Expanded):  # braces from the environment are text, not fields
            text = text.template_text
        if not has_fields(text):
            return ast.Constant(text), False
        try:
            parts = split_fields(text)
        except ValueError as exc:
            raise self.error(path, problem(f"template `{shown(text)}`", exc)) from None
        if not any(isinstance(p, _Field) for p in parts):
            # Only escaped braces: a constant, but not the source text itself.
            return ast.Constant("".join(p for p in parts if isinstance(p, str))), True
        nodes: list[ast.expr] = []
        for part in parts:
            if isinstance(part, str):
                nodes.append(ast.Constant(part))
                continue
            expr = self.field(part, text, path)
            if len(parts) == 1 and part.conversion is None and part.spec is None:
                node: ast.expr = expr
                break
            spec = ast.JoinedStr([ast.Constant(part.spec)]) if part.spec else None
            conversion = _CONVERSIONS[part.conversion] if part.conversion else -1
            nodes.append(ast.FormattedValue(expr, conversion, spec))
        else:
            node = ast.JoinedStr(nodes)
        try:
            fn = _build(node, self.consts, path)
        except (RecursionError, MemoryError):
            raise self.error(path, _too_deep(text)) from None
        self.leaves.append(_Leaf(path, text, fn))
        return node, True

    def field(self, part: _Field, text: str, path: str) -> ast.expr:
        """The checked expression of one field of the template ``text``."""
        try:
            return compile_node(part.expr, self.names)
        except ValueError as exc:
            raise self.error(
                path, problem(f"template `{shown(text)}`", _whole(part, exc))
            ) from None
        except (RecursionError, MemoryError):  # Python's parser limits nesting
            raise self.error(path, _too_deep(text)) from None


def _too_deep(template: Any) -> str:
    subject = f"template `{shown(template)}`" if isinstance(template, str) else "the template"
    return f"{subject} is nested too deeply to compile"


def _whole(field: _Field, exc: ValueError) -> ValueError:
    """When a field was split at a `:` or `!`, say what is wrong with the whole expression
    if that reads better (`{lambda: 1}` is a lambda, not `lambda` with a format spec)."""
    if field.spec is None and field.conversion is None:
        return exc
    try:
        ast.parse(field.text[1:-1].strip(), mode="eval")
    except (SyntaxError, ValueError):
        return exc
    try:
        compile_node(field.text[1:-1], ())
    except ValueError as whole:
        return whole
    return exc


def _join(path: str, key: Any) -> str:
    key = str(key)
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _build(
    node: ast.expr, consts: Mapping[str, Any], path: str
) -> Callable[[Mapping[str, Any]], Any]:
    return make_function(node, consts, f"<template {path or 'value'}>")


class Template:
    """A compiled template value. ``render(ctx)`` returns the value rendered for one event.

    ``ctx`` maps the template's names (``event_name``, ``event_data``, ...) to their values.
    ``render`` raises :class:`TemplateError` naming the field that failed.
    """

    __slots__ = ("source", "path", "is_constant", "_fn", "_leaves")

    def __init__(
        self, source: Any, path: str, fn: Callable[[Any], Any] | None, leaves: list[_Leaf]
    ):
        self.source = source
        self.path = path
        self.is_constant = fn is None
        self._fn = fn
        self._leaves = leaves

    def render(self, ctx: Mapping[str, Any]) -> Any:
        fn = self._fn
        if fn is None:
            return self.source
        try:
            return fn(ctx)
        except Exception as exc:
            raise self._locate(ctx, exc) from exc

    def _locate(self, ctx: Mapping[str, Any], exc: Exception) -> TemplateError:
        for leaf in self._leaves:
            try:
                leaf.fn(ctx)
            except Exception as leaf_exc:
                err = describe_error(leaf_exc)
                where = f" (at {leaf.path})" if leaf.path else ""
                return TemplateError(f"{err}{where}", template=shown(leaf.source))
        return TemplateError(describe_error(exc), template=shown(str(self.source)))

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def compile_template(value: Any, names: Collection[str] = BASE_NAMES, path: str = "") -> Template:
    """Compile a template value once; raise :class:`ConfigError` naming ``path`` when invalid."""
    try:
        return _compile(value, names, path)
    except (RecursionError, MemoryError):  # a payload nested deeper than its fields
        raise ConfigError(_too_deep(value), path or None) from None


def _compile(value: Any, names: Collection[str], path: str) -> Template:
    compiler = _Compiler(names, path)
    node, templated = compiler.value(value, path)
    if not templated:
        return Template(value, path, None, [])
    fn = _build(node, compiler.consts, path)
    return Template(value, path, fn, compiler.leaves)


class _Broken:
    """What the cache keeps for a template that does not compile: rendering it raises the
    compile error again, as a :class:`TemplateError`, without compiling it again."""

    __slots__ = ("source", "message")

    def __init__(self, source: str, message: str):
        self.source = source
        self.message = message

    def render(self, ctx: Mapping[str, Any]) -> Any:
        raise TemplateError(self.message, template=shown(self.source))


def _compile_failure(source: str, exc: ConfigError) -> str:
    """The compiler's message without its subject (the TemplateError names the template)."""
    reason = exc.message
    subject = f"template `{shown(source)}`"
    if reason.startswith(subject):
        reason = reason[len(subject) :].lstrip(":").strip()
    if reason.startswith(("is ", "has ")):
        reason = f"it {reason}"
    return f"cannot be compiled: {reason}"


class TemplateCache:
    """Compiled template strings by key, for templates met at run time (``Listener.format``).

    ``lookup(key)`` is the compiled template (anything with ``render(ctx)``) or None; it takes
    no lock. ``add(key, source, names)`` compiles ``source`` and keeps it. At most ``maxsize``
    entries are kept: when full, the oldest entry is dropped (first in, first out, so a hit
    costs one dict lookup and nothing else). Safe to use from many threads; two threads
    missing the same key at once may both compile it, and one result is kept.

    A string that does not compile is kept too: rendering it raises :class:`TemplateError`
    (never :class:`ConfigError`) naming the template, at every call, without compiling again.
    """

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, Template | _Broken] = OrderedDict()
        self.lookup: Callable[[Hashable], Template | _Broken | None] = self._entries.get
        self._lock = threading.Lock()
        register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # the entries are pure values: the child keeps them

    def add(self, key: Hashable, source: str, names: Collection[str]) -> Template | _Broken:
        """Compile ``source`` (which may use ``names``), keep it under ``key``, return it."""
        try:
            entry: Template | _Broken = compile_template(source, names)
        except ConfigError as exc:
            entry = _Broken(source, _compile_failure(source, exc))
        with self._lock:
            kept = self._entries.setdefault(key, entry)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return kept

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
