"""Templates: typing, escapes, format specs, structures, YAML's `{name}` trap, errors; the
cache of templates met at run time."""

from __future__ import annotations

import datetime
import logging
import threading

import pytest

from eventisc.errors import ConfigError, TemplateError
from eventisc.template import BASE_NAMES, TemplateCache, compile_template

from .support import User

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


def test_a_triple_quoted_string_in_a_field_is_one_string():
    # A `:` or `!r` inside a triple-quoted string is not a format spec or a conversion.
    assert render("{'''it's: ok!r'''}") == "it's: ok!r"
    assert render('{"""say "hi": now"""}') == 'say "hi": now'
    assert render("{'''it's'''!r:>8}") == '  "it\'s"'


def test_a_template_nested_too_deeply_is_a_config_error():
    # Python's parser gives up (RecursionError, MemoryError): say so, naming the path.
    for template in ("{" + "-" * 100_000 + "1}", "{" + "(" * 2_000 + "1" + ")" * 2_000 + "}"):
        with pytest.raises(ConfigError) as info:
            compile_template({"deep": template}, path="data")
        assert info.value.path == "data.deep"
        assert "nested too deeply" in str(info.value) or "too many nested" in str(info.value)
        assert template[:20] in str(info.value)


# -- the cache of templates met at run time -----------------------------------------------------


def test_the_cache_compiles_once_and_keeps_at_most_maxsize_oldest_out_first():
    cache = TemplateCache(3)
    first = cache.add("k0", "{event_name}-0", BASE_NAMES)
    assert cache.lookup("k0") is first
    assert cache.add("k0", "{event_name}-0", BASE_NAMES) is first  # a racing add keeps one
    for n in range(1, 5):
        cache.add(f"k{n}", f"{{event_name}}-{n}", BASE_NAMES)
    assert len(cache) == 3
    assert [cache.lookup(f"k{n}") is not None for n in range(5)] == [False, False, True, True, True]
    assert cache.lookup("k4").render(CTX) == "myapp.user_created-4"
    cache.clear()
    assert len(cache) == 0 and cache.lookup("k4") is None


def test_the_cache_keeps_a_template_that_does_not_compile_as_a_template_error():
    cache = TemplateCache(8)
    broken = cache.add("bad", "{event_data['n'", BASE_NAMES)
    assert cache.lookup("bad") is broken
    for _ in range(2):
        with pytest.raises(TemplateError) as info:
            broken.render(CTX)
        assert info.value.template == "{event_data['n'"
        assert str(info.value) == (
            "template `{event_data['n'`: cannot be compiled: it is missing a closing `}`"
        )


def test_the_cache_names_are_the_ones_given():
    cache = TemplateCache(8)
    ok = cache.add(
        ("q", frozenset({"query_string"})), "{query_string}", (*BASE_NAMES, "query_string")
    )
    assert ok.render({**CTX, "query_string": "a=1"}) == "a=1"
    with pytest.raises(TemplateError, match="unknown name `query_string`"):
        cache.add("q", "{query_string}", BASE_NAMES).render(CTX)


def test_the_cache_from_many_threads():
    cache = TemplateCache(10)
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        barrier.wait()
        try:
            for n in range(400):
                key = n % 25
                entry = cache.lookup(key) or cache.add(key, f"{{event_data[n]}}/{key}", BASE_NAMES)
                assert entry.render(CTX) == f"43/{key}"
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cache) <= 10


def test_errors_show_a_url_template_with_its_password_masked():
    with pytest.raises(ConfigError) as info:
        compile_template({"url": "http://u:secret@h/{event_data[x}"}, path="data")
    assert "template `http://u:***@h/{event_data[x}`" in str(info.value)
    assert "secret" not in str(info.value)
    url = compile_template({"url": "amqp://u:secret@h/{event_data[missing]}"}, path="data")
    with pytest.raises(TemplateError) as info:
        url.render(CTX)
    assert "template `amqp://u:***@h/{event_data[missing]}`: no key 'missing'" in str(info.value)
    assert "secret" not in str(info.value) and "secret" not in info.value.template
    cache = TemplateCache(2)
    with pytest.raises(TemplateError) as info:
        cache.add("k", "http://u:secret@h/{event_data[x", BASE_NAMES).render(CTX)
    assert str(info.value) == (
        "template `http://u:***@h/{event_data[x`: cannot be compiled: it is missing a closing `}`"
    )


def test_a_scheme_less_url_template_error_masks_the_password():
    # "u:p@host" without "http://": still a URL's credentials in an error message.
    with pytest.raises(ConfigError) as info:
        compile_template("u:secret@127.0.0.1?x={", path="url")
    assert "secret" not in str(info.value) and "u:***@127.0.0.1" in str(info.value)


# -- attributes of mappings: `data.user` reads `data["user"]` -----------------------------------


@pytest.mark.parametrize(
    "user",
    [User(7, "ada@example.com"), {"id": 7, "email": "ada@example.com"}],
    ids=["object", "json"],
)
def test_the_readme_example_works_with_an_object_and_with_json_data(user):
    # Given the README's template and the user as an object or as decoded JSON...
    t = compile_template(
        {"user_id": "{event_data['user'].id}", "email": "{event_data['user'].email}"}
    )
    # ... it renders the same.
    rendered = t.render({"event_name": "e", "event_data": {"user": user}})
    assert rendered == {"user_id": 7, "email": "ada@example.com"}


def test_a_chain_of_attributes_reads_nested_mappings():
    data = {"user": {"address": {"city": "Oslo"}}}
    assert render("{event_data.user.address.city}", ctx={"event_data": data}) == "Oslo"
    assert render("to {event_data[user].address.city}", ctx={"event_data": data}) == "to Oslo"


def test_a_mapping_attribute_wins_over_a_key_of_the_same_name():
    data = {"items": [1, 2], "get": "key"}
    assert render("{event_data.items()}", ctx={"event_data": data}) == data.items()
    assert render("{event_data['items']}", ctx={"event_data": data}) == [1, 2]


def test_a_name_found_neither_as_attribute_nor_as_key_says_both_were_tried():
    t = compile_template({"city": "{event_data.user.address.city}"}, path="data")
    with pytest.raises(TemplateError) as info:
        t.render({"event_name": "e", "event_data": {"user": {"name": "Ada"}}})
    message = str(info.value)
    assert "dict has neither an attribute `.address` nor a key 'address'" in message
    assert "(at data.city)" in message
    # An object is not a mapping: only its attributes are looked up.
    with pytest.raises(TemplateError, match="AttributeError: 'User' object has no attribute"):
        t.render({"event_name": "e", "event_data": {"user": User(7, "a@example.com")}})
