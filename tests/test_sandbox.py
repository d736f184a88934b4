"""The safe expression language: escapes are refused at load, guards hold at run time."""

from __future__ import annotations

import os

import pytest

from eventisc.errors import ConfigError, TemplateError
from eventisc.sandbox import compile_expression
from eventisc.template import compile_template

NAMES = ("event_name", "event_data")


class Holder:
    module = os  # an attribute that happens to be a module
    value = 3


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "__builtins__",
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "event_data.__dict__",
        "event_data.__class__.__init__.__globals__",
        "json.dumps.__globals__",
        "'{0.__class__}'.format(event_data)",
        "'{x.__class__}'.format_map(event_data)",
        "str.format('{0.__class__}', event_data)",
        "dict.mro()",
        "getattr(event_data, '__class__')",
        "eval('1')",
        "exec('1')",
        "open('/etc/passwd')",
        "type(event_data)",
        "vars(event_data)",
        "globals()",
        "lambda: 1",
        "[c for c in ()]",
        "(c for c in ()).gi_frame",
        "{k: 1 for k in ()}",
        "(x := 1)",
        "f'{event_data}'",
        "print(*event_data)",
        "dict(**event_data)",
        "json.codecs.open('/etc/passwd')",
        "datetime.sys",
        "event_data._private",
    ],
)
def test_escapes_are_refused_at_load(expr):
    with pytest.raises(ConfigError) as info:
        compile_expression(expr, NAMES, "listeners[0].filter.expr")
    assert info.value.path == "listeners[0].filter.expr"
    with pytest.raises(ConfigError):
        compile_template("{ " + expr + " }", NAMES, "listeners[0].data.x")


def test_an_attribute_that_is_a_module_is_refused_at_run_time():
    fn = compile_expression("event_data.module", NAMES)
    with pytest.raises(TemplateError, match="is a module"):
        fn({"event_name": "e", "event_data": Holder()})
    assert compile_expression("event_data.value", NAMES)({"event_data": Holder()}) == 3


@pytest.mark.parametrize(
    "expr", ["10 ** 100000", "'a' * 10 ** 8", "[0] * 10 ** 7", "1 << 100000", "10**8 * 'a'"]
)
def test_operators_refuse_to_build_huge_values(expr):
    fn = compile_expression(expr, NAMES)
    with pytest.raises(TemplateError, match="too large"):
        fn({})


def test_ordinary_arithmetic_still_works():
    assert compile_expression("2 ** 10", NAMES)({}) == 1024
    assert compile_expression("'ab' * 3", NAMES)({}) == "ababab"
    assert compile_expression("1 << 4", NAMES)({}) == 16
    assert compile_expression("1.5 ** 2", NAMES)({}) == 2.25


def test_string_percent_formatting_cannot_reach_attributes():
    fn = compile_expression("'%(a)s' % event_data", NAMES)
    assert fn({"event_data": {"a": "x"}}) == "x"


def test_modules_are_read_only_views():
    fn = compile_expression("json.loads(event_data)['a']", NAMES)
    assert fn({"event_data": '{"a": 2}'}) == 2
    assert compile_expression("math.sqrt(16)", NAMES)({}) == 4.0
    assert compile_expression("datetime.date(2024, 1, 2).isoformat()", NAMES)({}) == "2024-01-02"


@pytest.mark.parametrize("expr", ["event_data._secret", "event_data.user.__class__"])
def test_private_names_are_refused_on_mappings_too(expr):
    # A key starting with `_` is not reachable as an attribute, even though mappings fall
    # back to their keys; brackets (`event_data['_secret']`) read it as data.
    with pytest.raises(ConfigError, match="names starting with `_` are private"):
        compile_expression(expr, NAMES)
    data = {"_secret": 1, "user": {}}
    assert compile_expression("event_data['_secret']", NAMES)({"event_data": data}) == 1


def test_blocked_attributes_are_refused_on_mappings_too():
    with pytest.raises(ConfigError, match="`.format` is not allowed"):
        compile_expression("event_data.format", NAMES)


def test_a_key_read_as_an_attribute_in_a_filter():
    fn = compile_expression("event_data.order.total > 10", NAMES)
    assert fn({"event_data": {"order": {"total": 12}}}) is True
