"""Safe expressions: the language inside template fields and ``expr`` filters.

An expression is a subset of Python checked statically when it is compiled, then turned into
an ordinary Python function (so evaluating it costs what the same Python code costs):

- literals, the template's names (``event_name``, ``event_data``, ...), the modules ``json``,
  ``math`` and ``datetime`` (their public functions and types only) and a short list of
  builtins (:data:`SAFE_BUILTINS`);
- subscripts, attribute access and method calls, arithmetic, comparisons, ``and``/``or``/
  ``not``, conditional expressions.

``obj.name`` on a mapping without such an attribute is ``obj["name"]`` (as in Jinja): data
decoded from JSON reads like objects. The attribute wins (``data.items`` is the method), and
the rules on names below hold for both.

Refused at compile time: any name or attribute starting with ``_`` (no ``__import__``,
``__class__``, ``__dict__``), attributes that reach frames or bypass the check
(``format``/``format_map``, which can read private attributes through a format string, ``mro``,
``gi_frame``, ...), lambdas, comprehensions, f-strings, assignment expressions, ``*`` unpacking.
At run time, an attribute that is a module is refused, and ``**``, ``*`` and ``<<`` refuse to
build huge numbers, strings or lists.
"""

from __future__ import annotations

import ast
import datetime as _datetime
import json as _json
import math as _math
import re
from collections.abc import Callable, Collection, Mapping
from types import ModuleType
from typing import Any

from .errors import ConfigError, TemplateError

__all__ = [
    "SAFE_BUILTINS",
    "compile_expression",
    "compile_node",
    "describe_error",
    "make_function",
    "problem",
]

#: Name of the parameter holding the context mapping in compiled functions.
CTX = "_c"

#: Builtins an expression may call.
SAFE_BUILTINS: dict[str, Any] = {
    f.__name__: f
    for f in (
        abs, all, any, bool, chr, dict, divmod, enumerate, float, hex, int, isinstance, len,
        list, max, min, oct, ord, range, repr, reversed, round, set, sorted, str, sum, tuple,
        zip,
    )
}  # fmt: skip


class _Namespace:
    """A read-only view of some of a module's public attributes."""

    def __init__(self, name: str, values: Mapping[str, Any]):
        self.__dict__.update(values)
        self._name = name

    def __setattr__(self, key: str, value: Any) -> None:
        if "_name" in self.__dict__:
            raise AttributeError(f"{self._name} is read-only in templates")
        super().__setattr__(key, value)

    def __repr__(self) -> str:
        return f"<safe module {self._name}>"


def _public(module: ModuleType, names: Collection[str] | None = None) -> dict[str, Any]:
    names = names or [n for n in dir(module) if not n.startswith("_")]
    return {
        n: getattr(module, n)
        for n in names
        if hasattr(module, n) and not isinstance(getattr(module, n), ModuleType)
    }


#: Modules an expression may use, by name.
MODULES: dict[str, _Namespace] = {
    "json": _Namespace("json", _public(_json, ["dumps", "loads", "JSONDecodeError"])),
    "math": _Namespace("math", _public(_math)),
    "datetime": _Namespace(
        "datetime",
        _public(
            _datetime,
            ["date", "datetime", "time", "timedelta", "timezone", "tzinfo", "MINYEAR", "MAXYEAR"],
        ),
    ),
}

#: Attributes refused even though they do not start with ``_``.
BLOCKED_ATTRIBUTES = frozenset(
    {
        "format", "format_map", "mro", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame",
        "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await", "tb_frame", "tb_next",
        "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "func_globals",
        "func_code", "im_func", "im_self",
    }
)  # fmt: skip

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Attribute, ast.Subscript, ast.Slice,
    ast.Tuple, ast.List, ast.Dict, ast.Set, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
    ast.IfExp, ast.Call, ast.keyword, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip

_NODE_NAMES = {
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.NamedExpr: "`:=`",
    ast.JoinedStr: "f-strings",
    ast.Starred: "`*` unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.MatMult: "`@`",
}

#: Largest exponent, shift, and sequence length the operators will produce.
MAX_EXPONENT = 1_000
MAX_SHIFT = 4_096
MAX_SEQUENCE = 1_000_000

_FORMAT_FIELD = re.compile(r"\s*([A-Za-z_]\w*)((?:\.\w+|\[[^\]]*\])*)\s*\Z")
_FORMAT_PART = re.compile(r"\.(\w+)|\[([^\]]*)\]")
_INT = re.compile(r"-?\d+\Z")


def parse_expression(source: str) -> ast.expr:
    """Parse an expression; format-style ``event_data[user].id`` is understood too.

    Raises ``ValueError`` (or ``SyntaxError``) when it is not an expression.
    """
    match = _FORMAT_FIELD.match(source)
    if match and not any(":" in (m.group(2) or "") for m in _FORMAT_PART.finditer(source)):
        node: ast.expr = ast.Name(match.group(1), ast.Load())
        for part in _FORMAT_PART.finditer(match.group(2)):
            attr, key = part.groups()
            if attr is not None:
                node = ast.Attribute(node, attr, ast.Load())
            else:
                node = ast.Subscript(node, ast.Constant(_format_key(key)), ast.Load())
        return node
    try:
        tree = ast.parse(f"(\n{source.strip()}\n)", mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"is not a valid expression ({exc.msg})") from None
    except ValueError as exc:  # a NUL byte in the source
        raise ValueError(f"is not a valid expression ({exc})") from None
    for sub in ast.walk(tree):
        if isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Name):
            sub.slice = ast.Constant(sub.slice.id)
    body: ast.expr = tree.body
    return body


def _format_key(key: str) -> Any:
    """A bracketed key, as str.format reads it: digits are an int, anything else a string."""
    stripped = key.strip()
    if _INT.match(stripped):
        return int(stripped)
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            pass
    return key


def _check(tree: ast.expr, names: frozenset[str]) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            what = _NODE_NAMES.get(type(node), f"{type(node).__name__} expressions")
            raise ValueError(f"{what} not allowed in templates")
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise ValueError(f"`{node.id}` is not allowed: names starting with `_` are private")
            if node.id not in names and node.id not in SAFE_BUILTINS and node.id not in MODULES:
                known = ", ".join([*sorted(names), *MODULES])
                raise ValueError(
                    f"unknown name `{node.id}`; templates can use {known} and the builtins "
                    f"{', '.join(sorted(SAFE_BUILTINS))}"
                )
        elif isinstance(node, ast.Attribute):
            _check_module_attribute(node)
            if node.attr.startswith("_"):
                raise ValueError(
                    f"attribute `.{node.attr}` is not allowed: names starting with `_` are private"
                )
            if node.attr in BLOCKED_ATTRIBUTES:
                raise ValueError(f"attribute `.{node.attr}` is not allowed in templates")
        elif isinstance(node, ast.keyword) and node.arg is None:
            raise ValueError("`**` unpacking not allowed in templates")


def _check_module_attribute(node: ast.Attribute) -> None:
    if isinstance(node.value, ast.Name) and node.value.id in MODULES:
        module = MODULES[node.value.id]
        if node.attr not in vars(module) or node.attr.startswith("_"):
            public = ", ".join(sorted(n for n in vars(module) if not n.startswith("_")))
            raise ValueError(
                f"`{node.value.id}.{node.attr}` is not available; templates can use "
                f"{node.value.id}.{{{public}}}"
            )


class _Rewrite(ast.NodeTransformer):
    """Point context names at the context mapping and route attributes/big operators
    through the run-time guards."""

    _GUARDED_OPS = {ast.Pow: "_pow", ast.Mult: "_mul", ast.LShift: "_lshift"}

    def __init__(self, names: frozenset[str], as_arguments: bool = False):
        self.names = names
        self.as_arguments = as_arguments

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.names and not self.as_arguments:
            return ast.Subscript(ast.Name(CTX, ast.Load()), ast.Constant(node.id), ast.Load())
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        value = self.visit(node.value)
        return ast.Call(ast.Name("_ga", ast.Load()), [value, ast.Constant(node.attr)], [])

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        guard = self._GUARDED_OPS.get(type(node.op))
        if guard is None:
            return node
        return ast.Call(ast.Name(guard, ast.Load()), [node.left, node.right], [])


def compile_node(source: str, names: Collection[str], as_arguments: bool = False) -> ast.expr:
    """Parse, check and rewrite one expression; raise ``ValueError`` saying what is wrong.

    The names are read from the context mapping, or with ``as_arguments`` are the compiled
    function's own parameters.
    """
    allowed = frozenset(names)
    tree = parse_expression(source)
    _check(tree, allowed)
    return _Rewrite(allowed, as_arguments).visit(tree)


def _ga(obj: Any, name: str) -> Any:
    try:
        value = getattr(obj, name)
    except AttributeError:
        # As Jinja does: `data.user` is `data["user"]` when a mapping has no such attribute.
        if not isinstance(obj, Mapping):
            raise
        try:
            return obj[name]
        except KeyError:
            raise TemplateError(
                f"{type(obj).__name__} has neither an attribute `.{name}` nor a key {name!r}"
            ) from None
    if isinstance(value, ModuleType):
        raise TemplateError(f"attribute `.{name}` is a module, which templates cannot reach")
    return value


def _too_big(what: str) -> TemplateError:
    return TemplateError(f"{what} is too large for a template")


def _pow(a: Any, b: Any) -> Any:
    if isinstance(b, int) and isinstance(a, int) and abs(b) > MAX_EXPONENT and abs(a) > 1:
        raise _too_big(f"exponent {b}")
    return a**b


def _mul(a: Any, b: Any) -> Any:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
            if len(seq) * n > MAX_SEQUENCE:
                raise _too_big(f"a sequence of {len(seq) * n} items")
    return a * b


def _lshift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > MAX_SHIFT:
        raise _too_big(f"shift {b}")
    return a << b


_GLOBALS: dict[str, Any] = {
    # Names starting with `_` never get past the check, so expressions cannot reach this;
    # C code run by an expression (datetime.__format__ imports `time`) needs an importer.
    "__builtins__": {"__import__": __import__},
    **SAFE_BUILTINS,
    **MODULES,
    "_ga": _ga,
    "_pow": _pow,
    "_mul": _mul,
    "_lshift": _lshift,
}


def make_function(
    body: ast.expr,
    consts: Mapping[str, Any],
    filename: str,
    params: Collection[str] = (CTX,),
) -> Callable[..., Any]:
    """Compile a checked expression AST into ``f(ctx)`` (or ``f(*params)``)."""
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(p) for p in params],
        kwonlyargs=[],
        kw_defaults=[],
        defaults=[],
    )
    tree = ast.fix_missing_locations(ast.Expression(ast.Lambda(args, body)))
    # Functions without constants share one read-only globals dict.
    namespace = {**_GLOBALS, **consts} if consts else _GLOBALS
    fn: Callable[..., Any] = eval(compile(tree, filename, "eval"), namespace)
    return fn


def compile_expression(
    source: str, names: Collection[str], path: str = "", as_arguments: bool = False
) -> Callable[..., Any]:
    """Compile a whole expression (an ``expr`` filter) into ``f(ctx)``, or with
    ``as_arguments`` into ``f(*names)`` (faster: no mapping to build per call).

    Raises :class:`ConfigError` naming ``path`` when the expression is not allowed.
    """
    try:
        node = compile_node(source, names, as_arguments)
    except ValueError as exc:
        raise ConfigError(problem(f"expression `{source}`", exc), path or None) from None
    params = tuple(names) if as_arguments else (CTX,)
    return make_function(node, {}, f"<expression {path or source}>", params)


def describe_error(exc: BaseException) -> str:
    """Say briefly what went wrong while evaluating an expression."""
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r}" if exc.args else "KeyError"
    if isinstance(exc, TemplateError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def problem(subject: str, exc: ValueError) -> str:
    """Join what was wrong to its subject: "template `{x` is missing a closing `}`"."""
    text = str(exc)
    return f"{subject} {text}" if text.startswith(("is ", "has ")) else f"{subject}: {text}"
