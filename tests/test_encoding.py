"""JSON encoding of event data, shared by the kinds."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest

import eventisc
from eventisc.encoding import check_text, dumps, encode
from eventisc.errors import TemplateError


def test_compact_json_with_common_python_types():
    value = {
        "at": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2024, 5, 1),
        "price": decimal.Decimal("9.90"),
        "id": uuid.UUID(int=1),
        "tags": {"a"},
        "text": "héllo",
        "n": [1, 2.5, None, True],
    }
    assert json.loads(dumps(value)) == {
        "at": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "price": "9.90",
        "id": "00000000-0000-0000-0000-000000000001",
        "tags": ["a"],
        "text": "héllo",
        "n": [1, 2.5, None, True],
    }
    assert dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'
    assert dumps("x") == '"x"'


def test_unencodable_objects_and_cycles_are_template_errors_naming_what():
    class Model:
        pass

    with pytest.raises(TemplateError, match="cannot encode the body as JSON: Model is not JSON"):
        encode({"user": Model()})
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(TemplateError, match="circular reference"):
        encode(cyclic, "the body")


# -- strict JSON: NaN, Infinity, text that is not UTF-8, depth --------------------------------


@pytest.mark.parametrize(
    "value, where, shown",
    [
        ({"x": float("nan")}, "['x']", "NaN"),
        ({"a": [1, {"b": float("inf")}]}, "['a'][1]['b']", "Infinity"),
        ([float("-inf")], "[0]", "-Infinity"),
    ],
)
def test_nan_and_infinity_are_not_json_and_the_error_names_the_field(value, where, shown):
    with pytest.raises(TemplateError) as info:
        encode(value, "the body (data)")
    message = str(info.value)
    assert message.startswith("cannot encode the body (data) as JSON: ")
    assert f"the value at {where} is {shown}" in message


def test_storage_may_keep_nan_with_strict_off():
    assert dumps({"x": float("nan")}, strict=False) == '{"x":NaN}'
    with pytest.raises(ValueError, match="the value at \\['x'\\] is NaN"):
        dumps({"x": float("nan")})


def test_text_that_is_not_utf8_is_a_template_error_naming_the_field():
    with pytest.raises(TemplateError, match=r"the value at \['name'\] holds '\\ud800'"):
        encode({"name": "Ann\ud800"})
    with pytest.raises(TemplateError, match="a key of the value"):
        encode({"k\udc80": 1})
    assert check_text("Zoë 名前", "the url") == "Zoë 名前"
    with pytest.raises(TemplateError, match="the url holds '\\\\udfff' at position 1"):
        check_text("a\udfff", "the url")


def test_deep_nesting_is_too_deep_and_a_cycle_is_a_cycle():
    deep: list = []
    current = deep
    for _ in range(100_000):
        current.append([])
        current = current[0]
    with pytest.raises(TemplateError) as info:
        encode({"deep": deep})
    assert "nested too deeply (100002 levels" in str(info.value)
    assert "circular" not in str(info.value)
    cyclic: list = [1]
    cyclic.append({"again": cyclic})
    with pytest.raises(TemplateError, match=r"the value at \[1\]\['again'\] contains itself"):
        encode(cyclic)


def test_http_and_rabbit_bodies_fail_at_render_naming_the_field(receiver):
    # Given an http listener and a rabbit listener whose default body is the event data
    # (the broker is never contacted: rendering fails first),
    app = eventisc.create_app(
        listeners=[
            {"kind": "http", "event_name": "e", "url": receiver.url, "data": "{event_data}"},
            {
                "kind": "rabbit",
                "event_name": "e",
                "url": "amqp://guest:guest@127.0.0.1:1/%2F",
                "publish_kwargs": {"routing_key": "q"},
            },
        ]
    )
    with app:
        for data in ({"price": float("nan")}, {"name": "\ud83d"}):
            # when an event carries NaN or a lone surrogate,
            report = app.dispatch("e", data)
            # then each listener fails with a TemplateError at render, and nothing is sent.
            assert [d.status for d in report] == ["failed", "failed"]
            for delivery in report:
                assert isinstance(delivery.error, TemplateError), delivery.error
                assert delivery.notification is None and delivery.attempts == 0
                assert "the value at ['" in str(delivery.error)
    assert receiver.requests == []


@pytest.mark.parametrize(
    "options, data, where",
    [
        ({"publish_kwargs": {"routing_key": "{event_data['k']}"}}, {"k": "a\ud800"},
         "publish_kwargs.routing_key"),
        ({"body": "{event_data['k']}"}, {"k": "text \udc00"}, "the rendered body"),
        ({"properties": {"headers": {"x": "{event_data['k']}"}}, "body": "fixed"},
         {"k": "\udfff"}, "['headers']['x']"),
    ],
)  # fmt: skip
def test_rabbit_text_that_is_not_utf8_fails_at_render(options, data, where):
    # pika would raise UnicodeEncodeError when publishing, on a background thread.
    listener = eventisc.Listener.from_config(
        {"kind": "rabbit", "event_name": "e", "url": "amqp://guest:guest@127.0.0.1:1/%2F",
         "publish_kwargs": {"routing_key": "q"}, **options}
    )  # fmt: skip
    with pytest.raises(TemplateError, match="cannot be encoded as UTF-8") as info:
        listener.render("e", data)
    assert where in str(info.value)
