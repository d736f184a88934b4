"""Templates: typing, escapes, format specs, structures, YAML's `{name}` trap, errors."""

from __future__ import annotations

import datetime
import logging

import pytest

from eventisc.errors import ConfigError, TemplateError
from eventisc.template import compile_template


class User:
    def __init__(self, id: int, email: str):
        self.id = id
        self.email = email


CTX = {
    "event_name": "myapp.user_created",
    "event_data": {"user": User(43, "ada@example.com"), "n": 43, "d": {"a": 1}, "items": [1, 2]},
}


def render(value, names=("event_name", "event_data"), ctx=CTX):
    return compile_template(value, names, "data").render(ctx)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{event_data['n']}", 43),
        ("{event_data[n]}", 43),
        ('{event_data["n"]}', 43),
        ("{event_data[d]}", {"a": 1}),
        ("{event_data[items][1]}", 2),
        ("{event_data['user'].id}", 43),
        ("{event_data[user].email}", "ada@example.com"),
        ("{event_name}", "myapp.user_created"),
        ("{event_data['n'] * 2 + 1}", 87),
        ("{event_data['n'] > 40}", True),
        ("{event_data.get('missing')}", None),
        ("{event_data.get('missing', 'x')}", "x"),
        ("{'big' if event_data['n'] > 40 else 'small'}", "big"),
        ("{event_name.upper()}", "MYAPP.USER_CREATED"),
        ("{len(event_data['items'])}", 2),
        ("{json.dumps(event_data['d'])}", '{"a": 1}'),
        ("{math.floor(2.5)}", 2),
        ("{datetime.timedelta(hours=1).total_seconds()}", 3600.0),
        ("{ {'a': 1}['a'] }", 1),
        ("{event_data['items'][0:1]}", [1]),
        ("{str(event_data['n'])}", "43"),
    ],
)
def test_a_single_field_keeps_the_type_of_its_value(template, expected):
    assert render(template) == expected
    assert type(render(template)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("user {event_data['n']}", "user 43"),
        ("{event_name}/{event_data[user].id}", "myapp.user_created/43"),
        ("{{literal}}", "{literal}"),
        ("{{{event_data[n]}}}", "{43}"),
        ("}}{{", "}{"),
        ("no fields", "no fields"),
        ("{event_data[n]:05d}", "00043"),
        ("n={event_data[n]!r}", "n=43"),
        ("{event_name!r:>22}", "  'myapp.user_created'"),
        ("{event_data['n'] != 3}", True),
        ("x{event_data['n'] != 3}", "xTrue"),
    ],
)
def test_mixed_text_renders_to_a_string_with_escapes_and_specs(template, expected):
    assert render(template) == expected


def test_structures_are_rendered_recursively_and_constants_pass_through():
    template = {
        "id": "{event_data[user].id}",
        "tags": ["{event_name}", 5, None, {"deep": "{event_data['d']['a']}"}],
        "const": {"k": 1},
        "flag": True,
    }
    assert render(template) == {
        "id": 43,
        "tags": ["myapp.user_created", 5, None, {"deep": 1}],
        "const": {"k": 1},
        "flag": True,
    }


def test_a_value_without_fields_is_a_constant():
    t = compile_template({"a": 1, "b": ["x"]}, path="data")
    assert t.is_constant
    assert t.render(CTX) == {"a": 1, "b": ["x"]}
    assert compile_template("{{only escapes}}").render(CTX) == "{only escapes}"


def test_kind_specific_names_are_available_only_where_declared():
    ctx = {**CTX, "query_string": "a=1"}
    assert (
        render(
            "http://x/?{query_string}", names=("event_name", "event_data", "query_string"), ctx=ctx
        )
        == "http://x/?a=1"
    )
    with pytest.raises(ConfigError, match="unknown name `query_string`"):
        compile_template("{query_string}", ("event_name", "event_data"), "data")


def test_datetime_values_format_with_a_spec():
    ctx = {"event_name": "e", "event_data": {"at": datetime.datetime(2024, 5, 1, 12, 30)}}
    assert render("{event_data[at]:%Y-%m-%d}", ctx=ctx) == "2024-05-01"
    assert render("{event_data[at].isoformat()}", ctx=ctx) == "2024-05-01T12:30:00"


def test_yaml_mapping_trap_is_read_as_the_template_with_a_warning(caplog):
    # Given YAML's reading of an unquoted `event_name: {event_name}` ...
    template = {"event_name": {"event_name": None}, "data": {"event_data[user].id": None}}
    # When it is compiled
    with caplog.at_level(logging.WARNING, logger="eventisc"):
        result = render(template)
    # Then it renders as the template it was meant to be, and says so
    assert result == {"event_name": "myapp.user_created", "data": 43}
    assert "unquoted YAML `{event_name}`" in caplog.text
    assert "Quote it" in caplog.text


def test_a_real_one_key_mapping_with_null_is_kept():
    assert render({"foo": {"unrelated": None}}) == {"foo": {"unrelated": None}}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{event_data['n']", "is missing a closing `}`"),
        ("a}b", "single `}`"),
        ("{}", "empty field"),
        ("{ }", "empty field"),
        ("{event_data[n]:{w}}", "nested field in a format spec"),
        ("{event_data[}", "unbalanced `}`"),
        ("{unknown_name}", "unknown name `unknown_name`"),
        ("{event_data['n'] +}", "is not a valid expression"),
        ("{lambda: 1}", "lambda not allowed"),
        ("{[x for x in event_data]}", "comprehensions not allowed"),
        ("{json.codecs}", "`json.codecs` is not available"),
    ],
)
def test_bad_templates_fail_at_compile_time_naming_the_path(template, message):
    with pytest.raises(ConfigError) as info:
        compile_template({"field": template}, path="listeners[2].data")
    assert info.value.path == "listeners[2].data.field"
    assert message in str(info.value)
    assert template in str(info.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{event_data['missing']}", "no key 'missing'"),
        ("{event_data[user].nope}", "AttributeError"),
        ("{event_data['n'] / 0}", "ZeroDivisionError"),
        ("{event_data['items'][5]}", "IndexError"),
    ],
)
def test_render_errors_name_the_field_that_failed(template, message):
    t = compile_template({"ok": "{event_name}", "bad": template}, path="data")
    with pytest.raises(TemplateError) as info:
        t.render(CTX)
    assert message in str(info.value)
    assert f"`{template}`" in str(info.value)
    assert "data.bad" in str(info.value)
