"""JSON encoding of event data, shared by the kinds."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import textwrap
import types
import uuid

import pytest

import eventisc
from eventisc.encoding import JSONEncoding, check_text, dumps, encode
from eventisc.errors import ConfigError, TemplateError


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

    with pytest.raises(TemplateError) as info:
        encode({"user": [1, Model()]})
    assert str(info.value).startswith(
        "cannot encode the body as JSON: the value at ['user'][1]: Model is not JSON serializable"
    )
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


# -- objects JSON cannot hold: the built-in conversions and json_default -----------------------


@dataclasses.dataclass
class Point:
    x: int
    at: datetime.date


class Jsonable:
    def __json__(self):
        return {"via": "__json__"}

    def to_dict(self):  # __json__ is asked first
        return {"via": "to_dict"}


class Dictable:
    def __init__(self, id):
        self.id = id

    def to_dict(self):
        return {"id": self.id}


class Model:
    """Stands for an ORM model instance: nothing built in converts it."""

    def __init__(self, pk):
        self.pk = pk


def model_to_json(value):
    """A json_default: models become their primary key; anything else is passed on."""
    if isinstance(value, Model):
        return {"model": value.pk}
    raise TypeError(f"not a model: {type(value).__name__}")


def decimal_as_number(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError


NOT_A_FUNCTION = 42

#: Event data with one of each object the built-in conversions handle, and what it becomes.
EVERY_KIND = {
    "at": datetime.datetime(2024, 5, 1, 12, 30, 15, 500, tzinfo=datetime.timezone.utc),
    "naive": datetime.datetime(2024, 5, 1, 12, 30),
    "day": datetime.date(2024, 5, 1),
    "time": datetime.time(8, 15),
    "price": decimal.Decimal("9.90"),
    "id": uuid.UUID(int=1),
    "tags": {"b", "c", "a"},
    "frozen": frozenset({3, 1, 2}),
    "point": Point(1, datetime.date(2024, 1, 2)),
    "jsonable": Jsonable(),
    "dictable": [Dictable(7)],
    "mapping": types.MappingProxyType({"k": uuid.UUID(int=2)}),
}
EVERY_KIND_JSON = {
    "at": "2024-05-01T12:30:15.000500+00:00",
    "naive": "2024-05-01T12:30:00",
    "day": "2024-05-01",
    "time": "08:15:00",
    "price": "9.90",
    "id": "00000000-0000-0000-0000-000000000001",
    "tags": ["a", "b", "c"],
    "frozen": [1, 2, 3],
    "point": {"x": 1, "at": "2024-01-02"},
    "jsonable": {"via": "__json__"},
    "dictable": [{"id": 7}],
    "mapping": {"k": "00000000-0000-0000-0000-000000000002"},
}


@pytest.mark.parametrize("key", sorted(EVERY_KIND))
def test_each_built_in_conversion(key):
    assert json.loads(encode({key: EVERY_KIND[key]})) == {key: EVERY_KIND_JSON[key]}


def test_an_object_s_own_method_comes_before_the_generic_forms():
    @dataclasses.dataclass
    class Account:
        id: int
        password: str

        def to_dict(self):
            return {"id": self.id}

    assert encode([Account(1, "secret")]) == '[{"id":1}]'


def test_a_set_of_values_that_do_not_sort_is_written_in_its_own_order():
    assert sorted(json.loads(encode({1, "a"})), key=str) == [1, "a"]


def test_an_object_nothing_converts_is_named_with_its_place_even_inside_a_conversion():
    # Given a Model inside a dataclass inside a list...
    with pytest.raises(TemplateError) as info:
        encode({"orders": [Point(Model(3), datetime.date(2024, 1, 1))]}, "the body (data)")
    # ... the error names its type and where it is, as the converted data reads.
    assert str(info.value).startswith(
        "cannot encode the body (data) as JSON: the value at ['orders'][0]['x']: Model is not "
        "JSON serializable: give it a `__json__()` or `to_dict()` method, name a "
        "`json_default` function"
    )


def test_a_conversion_that_contains_its_object_is_a_circular_reference():
    class Loop:
        def to_dict(self):
            return {"me": self}

    with pytest.raises(TemplateError, match=r"the value at \['a'\]\['me'\] contains itself"):
        encode({"a": Loop()})


def test_json_default_is_asked_first_and_passes_on_with_type_error():
    encoding = JSONEncoding(decimal_as_number)
    data = {"price": decimal.Decimal("9.5"), "day": datetime.date(2024, 5, 1)}
    assert json.loads(encoding.encode(data)) == {"price": 9.5, "day": "2024-05-01"}
    assert JSONEncoding(f"{__name__}:decimal_as_number") == JSONEncoding(
        f"{__name__}:decimal_as_number"
    )


def test_json_default_that_fails_otherwise_is_named_in_the_error():
    def broken(value):
        raise KeyError("pk")

    with pytest.raises(TemplateError) as info:
        JSONEncoding(broken).encode({"user": Model(1)})
    assert "the value at ['user']: json_default broken failed on a Model: KeyError" in str(
        info.value
    )


def _write(tmp_path, text):
    path = tmp_path / "events.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_json_default_from_a_yaml_config_for_the_app_and_for_one_listener(tmp_path, receiver):
    # Given an app-wide json_default and a listener naming one of its own,
    path = _write(
        tmp_path,
        f"""
        json_default: {__name__}:model_to_json
        listeners:
        - kind: http
          name: app-wide
          event_name: e
          url: {receiver.url}
          data: "{{event_data}}"
        - kind: http
          name: own
          event_name: e
          url: {receiver.url}
          data: "{{event_data}}"
          json_default: {__name__}:decimal_as_number
        """,
    )
    with eventisc.create_app(config_file=path) as app:
        # when an event carries a model and a Decimal,
        report = app.dispatch("e", {"user": Model(5), "price": decimal.Decimal("2.5")})
    # then the app's function converts the model and the built-ins the Decimal...
    assert report["app-wide"].status == "delivered", report
    assert receiver.requests[0].json == {"user": {"model": 5}, "price": "2.5"}
    # ... and the listener's own function replaces the app's.
    own = report["own"]
    assert own.status == "failed"
    assert "the value at ['user']: Model is not JSON serializable" in str(own.error)
    assert "(json_default tests.test_encoding:decimal_as_number passed it on)" in str(own.error)


@pytest.mark.parametrize(
    "value, message",
    [
        ("no_colon", 'must name a function as "package.module:function"'),
        ("eventisc_no_such_module:f", "cannot import 'eventisc_no_such_module'"),
        (f"{__name__}:no_such_function", "has no attribute 'no_such_function'"),
        (f"{__name__}:NOT_A_FUNCTION", "is a int, not a function"),
    ],
)
def test_a_bad_json_default_is_a_config_error_naming_its_path(tmp_path, value, message):
    for config, where in (
        (f"json_default: {value}\n", "json_default"),
        (
            "listeners:\n- {kind: http, event_name: e, url: 'http://127.0.0.1:1/',"
            f" json_default: '{value}'}}\n",
            "listeners[0].json_default",
        ),
    ):
        with pytest.raises(ConfigError) as info:
            eventisc.create_app(config_file=_write(tmp_path, config))
        assert info.value.path == where
        assert message in str(info.value)
        assert str(tmp_path / "events.yaml") in str(info.value)


# -- through real transports ---------------------------------------------------------------------


def test_every_built_in_conversion_in_an_http_json_body(receiver):
    app = eventisc.create_app(
        listeners=[{"kind": "http", "event_name": "e", "url": receiver.url, "data": "{event_data}"}]
    )
    with app:
        assert app.trigger("e", EVERY_KIND) == 1
    [request] = receiver.requests
    assert request.json == EVERY_KIND_JSON


def test_every_built_in_conversion_in_the_default_rabbit_body(broker):
    queue = broker.name()
    listener = {
        "kind": "rabbit",
        "event_name": "e",
        "url": broker.url,
        "queue_kwargs": {"queue": {"queue": queue}},
        "publish_kwargs": {"exchange": "", "routing_key": queue},
    }
    with eventisc.create_app(listeners=[listener], json_default=model_to_json) as app:
        assert app.trigger("e", {**EVERY_KIND, "user": Model(9)}) == 1
    [(_, properties, body)] = broker.get(queue)
    assert properties.content_type == "application/json"
    assert json.loads(body) == {**EVERY_KIND_JSON, "user": {"model": 9}}


def test_task_arguments_convert_what_kombu_cannot_and_keep_what_it_can():
    kombu_json = pytest.importorskip("kombu.utils.json")
    listener = eventisc.Listener.from_config(
        {"kind": "celery", "event_name": "e", "task_name": "t", "task_kwargs": "**event_data"}
    )
    kwargs = listener.render("e", EVERY_KIND).payload["kwargs"]
    # kombu writes datetimes, Decimals and UUIDs itself, and the worker reads them back...
    assert kwargs["price"] is EVERY_KIND["price"] and kwargs["at"] is EVERY_KIND["at"]
    # ... the rest is converted as for a JSON body, kombu's own types inside kept too.
    kept = ("at", "naive", "day", "time", "price", "id")
    assert kombu_json.loads(kombu_json.dumps(kwargs)) == {
        **{k: EVERY_KIND[k] for k in kept},
        **{k: v for k, v in EVERY_KIND_JSON.items() if k not in kept},
        "point": {"x": 1, "at": datetime.date(2024, 1, 2)},
        "mapping": {"k": uuid.UUID(int=2)},
    }
    # A json_default converts for task arguments too.
    own = eventisc.Listener.from_config(
        {"kind": "celery", "event_name": "e", "task_name": "t",
         "json_default": f"{__name__}:model_to_json"}
    )  # fmt: skip
    assert own.render("e", {"m": Model(4)}).payload["kwargs"] == {
        "event_name": "e",
        "event_data": {"m": {"model": 4}},
    }
    # An object nothing converts is left to the app's serializer (it may be pickle)...
    model = Model(1)
    assert listener.render("e", {"m": model}).payload["kwargs"] == {"m": model}
    # ... unless the listener says the serializer is JSON: then it fails at render.
    strict = eventisc.Listener.from_config(
        {"kind": "celery", "event_name": "e", "task_name": "t", "task_kwargs": "**event_data",
         "send_task_kwargs": {"serializer": "json"}}
    )  # fmt: skip
    with pytest.raises(TemplateError) as info:
        strict.render("e", {"m": model})
    assert "the task's arguments ([args, kwargs]) as JSON: the value at [1]['m']: Model" in str(
        info.value
    )
