"""Loading configs: files, formats, and one clear ConfigError for each kind of bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventisc
from eventisc import ConfigError, Listener
from eventisc.config import config_schema

from .kinds import TemplatedListener

GOOD = {"name_prefix": "p.", "listeners": [{"kind": "recording", "event_name": "p.e"}]}


def test_yaml_by_extension_json_otherwise(tmp_path):
    for name, text in [
        ("c.yaml", "name_prefix: p.\nlisteners:\n- {kind: recording, event_name: p.e}\n"),
        ("c.yml", "name_prefix: p.\nlisteners:\n- {kind: recording, event_name: p.e}\n"),
        ("c.json", json.dumps(GOOD)),
        ("c.conf", json.dumps(GOOD)),
    ]:
        path = tmp_path / name
        path.write_text(text)
        app = eventisc.create_app(config_file=str(path))
        assert app.trigger("e") == 1, name
        assert app.config_source == str(path)


def test_file_objects_are_read_as_json_or_yaml():
    assert eventisc.create_app(config_file=io.StringIO(json.dumps(GOOD))).trigger("e") == 1
    text = "name_prefix: p.\nlisteners:\n- kind: recording\n  event_name: p.e\n"
    assert eventisc.create_app(config_file=io.StringIO(text)).trigger("e") == 1
    assert eventisc.create_app(config_file=io.BytesIO(text.encode())).trigger("e") == 1


def test_a_dict_config_and_pathlib_paths(tmp_path):
    assert eventisc.create_app(config_file=GOOD).trigger("e") == 1
    path = tmp_path / "c.json"
    path.write_text(json.dumps(GOOD))
    assert eventisc.create_app(config_file=path).trigger("e") == 1


def test_empty_file_and_null_listeners_are_an_app_without_listeners(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert eventisc.create_app(config_file=str(path)).listeners == []
    path.write_text("listeners:\nname_prefix:\n")
    app = eventisc.create_app(config_file=str(path))
    assert app.listeners == [] and app.name_prefix == ""


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load_error(tmp_path, text, name="c.yaml"):
    path = write(tmp_path, text, name)
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=path)
    assert info.value.source == path
    assert str(info.value).startswith(path + ": ")
    return info.value


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        eventisc.create_app(config_file=str(tmp_path / "nope.yaml"))


def test_invalid_yaml_names_the_line(tmp_path):
    err = load_error(tmp_path, "listeners:\n  - kind: http\n   url: [\n")
    assert "invalid YAML at line" in str(err)


def test_invalid_json_names_the_line_and_the_rule(tmp_path):
    err = load_error(tmp_path, "listeners: []\n", name="c.conf")
    assert "invalid JSON at line 1" in str(err)
    assert ".yaml or .yml" in str(err)


def test_top_level_must_be_a_mapping(tmp_path):
    assert "must be a mapping" in str(load_error(tmp_path, "- a\n- b\n"))


def test_unknown_top_level_key(tmp_path):
    err = load_error(tmp_path, "listners: []\n")
    assert err.path == "listners"
    assert "did you mean 'listeners'" in str(err)


def test_wrong_type_names_the_path(tmp_path):
    err = load_error(tmp_path, "listeners:\n- {kind: recording, event_name: 5}\n")
    assert err.path == "listeners[0].event_name"
    assert "is not of type 'string'" in str(err)


def test_unknown_kind_lists_the_known_ones(tmp_path):
    err = load_error(tmp_path, "listeners:\n- {kind: htp, event_name: e}\n")
    assert err.path == "listeners[0].kind"
    assert "did you mean 'http'" in str(err)
    for kind in ("celery", "http", "rabbit", "recording"):
        assert kind in str(err)


def test_missing_kind(tmp_path):
    err = load_error(tmp_path, "listeners:\n- {event_name: e}\n")
    assert err.path == "listeners[0]"
    assert "kind" in str(err)


def test_a_listener_that_is_not_a_mapping(tmp_path):
    err = load_error(tmp_path, "listeners:\n- just a string\n")
    assert err.path == "listeners[0]"


def test_bad_regex(tmp_path):
    err = load_error(tmp_path, "listeners:\n- {kind: recording, event_name_regex: 'a(b'}\n")
    assert err.path == "listeners[0].event_name_regex"
    assert "bad regex" in str(err)


def test_both_event_name_and_regex(tmp_path):
    text = "listeners:\n- {kind: recording, event_name: a, event_name_regex: b}\n"
    assert "exactly one of" in str(load_error(tmp_path, text))


def test_neither_event_name_nor_regex(tmp_path):
    err = load_error(tmp_path, "listeners:\n- {kind: recording}\n")
    assert err.path == "listeners[0]"
    assert "event_name" in str(err)


def test_unknown_option_of_a_kind_with_a_schema(tmp_path):
    text = "listeners:\n- {kind: templated, event_name: e, data: 1, targt: x}\n"
    err = load_error(tmp_path, text)
    assert err.path == "listeners[0].targt"
    assert "did you mean 'target'" in str(err)


def test_missing_required_option(tmp_path):
    err = load_error(tmp_path, "listeners:\n- {kind: templated, event_name: e}\n")
    assert "'data' is a required property" in str(err)


def test_bad_template(tmp_path):
    text = (
        "listeners:\n- kind: recording\n  event_name: e\n"
        '- kind: templated\n  event_name: e\n  data:\n    email: "{event_data[user].email"\n'
    )
    err = load_error(tmp_path, text)
    assert err.path == "listeners[1].data.email"
    assert "template `{event_data[user].email` is missing a closing `}`" in str(err)


def test_forbidden_template_expression(tmp_path):
    text = 'listeners:\n- kind: templated\n  event_name: e\n  data: "{().__class__}"\n'
    err = load_error(tmp_path, text)
    assert err.path == "listeners[0].data"
    assert "__class__" in str(err)


def test_bad_filter_expression(tmp_path):
    text = "listeners:\n- {kind: recording, event_name: e, filter: {kind: expr, expr: 'import os'}}"
    err = load_error(tmp_path, text)
    assert err.path == "listeners[0].filter.expr"


def test_a_missing_driver_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(Listener.registry.builtins, "fake", "tests.fake_driver_kind")
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[{"kind": "fake", "event_name": "e"}])
    assert info.value.path == "listeners[0].kind"
    assert "pip install 'eventisc[fake]'" in str(info.value)


def test_unknown_keyword_option():
    with pytest.raises(ConfigError, match="unknown option 'raise_error'"):
        eventisc.create_app(raise_error=True)


def test_templated_custom_kind_renders_and_delivers():
    TemplatedListener.delivered.clear()
    app = eventisc.create_app(
        listeners=[{"kind": "templated", "event_name": "e", "data": {"id": "{event_data[id]}"}}]
    )
    assert app.trigger("e", {"id": 7}) == 1
    (notification,) = TemplatedListener.delivered
    assert notification.payload == {"data": {"id": 7}}
    assert notification.listener == "templated:e" and notification.event_name == "e"


def test_importing_eventisc_imports_no_driver():
    code = (
        "import sys, eventisc\n"
        "eventisc.create_app(listeners=[])\n"
        "print(sorted(m for m in ('requests', 'celery', 'pika', 'kombu') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_full_schema_has_a_branch_per_kind():
    schema = config_schema()
    kinds = schema["properties"]["listeners"]["items"]["properties"]["kind"]["enum"]
    assert {"http", "celery", "rabbit"} <= set(kinds)
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "config, path",
    [
        ({"heartbeat": ".inf"}, "heartbeat"),
        ({"report_interval": ".nan"}, "report_interval"),
        ({"retry": {"max_backoff": ".inf"}}, "retry.max_backoff"),
        ({"dispatcher": {"block_timeout": ".nan"}}, "dispatcher.block_timeout"),
        ({"dispatcher": {"shutdown_timeout": "-.inf"}}, "dispatcher.shutdown_timeout"),
        (
            {
                "listeners": [
                    {"kind": "http", "event_name": "e", "url": "http://h/", "timeout": ".inf"}
                ]
            },
            "listeners[0].timeout",
        ),
        (
            {
                "listeners": [
                    {"kind": "celery", "event_name": "e", "task_name": "t", "timeout": ".nan"}
                ]
            },
            "listeners[0].timeout",
        ),
        (
            {
                "listeners": [
                    {"kind": "recording", "event_name": "e", "retry": {"backoff_factor": ".nan"}}
                ]
            },
            "listeners[0].retry.backoff_factor",
        ),
    ],
)
def test_every_duration_in_a_file_is_a_finite_number(tmp_path, config, path):
    # YAML's .inf and .nan are floats; written unquoted they would never end a wait.
    text = json.dumps(config).replace('".inf"', ".inf").replace('".nan"', ".nan")
    text = text.replace('"-.inf"', "-.inf").replace('"-.nan"', "-.nan")
    file = tmp_path / "c.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=str(file))
    assert info.value.path == path
    assert "finite" in info.value.message


@pytest.mark.parametrize(
    "make, path",
    [
        (lambda: eventisc.App("", [], heartbeat=float("nan")), "heartbeat"),
        (lambda: eventisc.App("", [], dispatcher={"idle_timeout": float("inf")}),
         "dispatcher.idle_timeout"),
        (lambda: eventisc.RetryPolicy.from_config({"max_backoff": float("nan")}),
         "retry.max_backoff"),
        (lambda: eventisc.App("", [{"kind": "celery", "event_name": "e", "task_name": "t",
                                    "timeout": float("inf")}]), "listeners[0].timeout"),
    ],
)  # fmt: skip
def test_durations_given_from_python_are_checked_the_same_way(make, path):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path and "finite" in info.value.message
    # Value classes built from Python raise a ConfigError (a ValueError) naming the setting.
    with pytest.raises(ConfigError, match="max_attempts: must be an integer of at least 1"):
        eventisc.RetryPolicy(max_attempts=True)
    with pytest.raises(ValueError, match="breaker_reset: must be a finite number of seconds"):
        eventisc.DispatcherSettings(breaker_reset=float("nan"))


def test_yaml_is_read_with_libyaml_when_pyyaml_has_it(tmp_path, monkeypatch):
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("this PyYAML was built without libyaml")
    used: list[type] = []

    class Spy(yaml.CSafeLoader):  # type: ignore[misc,name-defined]
        def __init__(self, stream):
            used.append(type(self))
            super().__init__(stream)

    monkeypatch.setattr(yaml, "CSafeLoader", Spy)
    file = tmp_path / "c.yaml"
    file.write_text("listeners:\n  - {kind: recording, event_name: e}\n")
    assert len(eventisc.create_app(config_file=str(file)).listeners) == 1
    assert used == [Spy]


# -- property: whatever a config says, loading it is either fine or a ConfigError ------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_HOSTS = st.sampled_from(["127.0.0.1", "localhost", "", "[::1]", "::1", "h h", "é.example", "a:b"])
_PORTS = st.sampled_from(["", ":1", ":abc", ":99999", ":-1", ":0", ":65535", ": 80"])
_QUERIES = st.sampled_from(
    [
        "",
        "?heartbeat=x",
        "?ssl_options={",
        "?ssl_options={'ca_certs': '/nonexistent/ca.pem'}",
        "?tcp_options={'TCP_KEEPIDLE': 'x'}",
        "?tcp_options=[",
        "?connection_attempts=0",
        "?socket_timeout=-1",
        "?blocked_connection_timeout=nan",
        "?unknown=1",
        "?channel_max=99999999",
        "?locale=%ff",
    ]
)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "amqp", "amqps", "ftp", "", "HTTP"]))
    user = draw(st.sampled_from(["", "u:p@", "u@", ":@", "u:p:q@"]))
    path = draw(st.sampled_from(["", "/", "/%2F", "/%zz", "/a b", "/x\x00"]))
    prefix = f"{scheme}://" if scheme else ""
    return prefix + user + draw(_HOSTS) + draw(_PORTS) + path + draw(_QUERIES)


_OPTIONS = {
    "http": ["url", "method", "timeout", "deadline", "data", "headers", "query_kwargs",
             "request_format", "success_status", "requests_kwargs", "follow_redirects",
             "max_response_bytes"],
    "rabbit": ["url", "timeout", "confirm", "pipeline", "max_in_flight", "mandatory",
               "max_size", "max_overflow", "recycle", "stale", "queue_kwargs",
               "publish_kwargs", "properties", "body"],
    "celery": ["task_name", "queue", "timeout", "broker_url", "task_args", "task_kwargs",
               "send_task_kwargs"],
}  # fmt: skip


@st.composite
def _listeners(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(_OPTIONS)))
    names = draw(st.lists(st.sampled_from(_OPTIONS[kind]), unique=True, max_size=4))
    listener: dict[str, Any] = {"kind": kind, "event_name": "e"}
    for name in names:
        listener[name] = draw(_VALUES)
    if kind in ("http", "rabbit"):
        listener["url"] = draw(_urls() | _VALUES)
    if kind == "celery" and draw(st.booleans()):
        listener["broker_url"] = draw(_urls())
    return listener


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_listeners())
def test_any_listener_config_builds_or_is_a_config_error(listener):
    try:
        app = eventisc.App("", [listener])
    except ConfigError as exc:
        assert exc.path and exc.path.startswith("listeners[0]"), exc
        assert "u:p@" not in str(exc), exc  # passwords are masked
        return
    app.close()


# -- every mistake, in the file's order --------------------------------------------------------

THREE_MISTAKES = """\
retry:
  max_attemps: 3
listeners:
- kind: http
  event_name: a
  urll: http://127.0.0.1:9/
- kind: http
  event_name: b
  url: http://127.0.0.1:9/
  timeout: -1
dispatcher:
  wokers: 2
"""


def test_every_mistake_of_a_file_is_reported_in_its_order(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(THREE_MISTAKES)
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=str(path))
    err = info.value
    assert [e.path for e in err.errors] == [
        "retry.max_attemps",
        "listeners[0].urll",
        "listeners[1].timeout",
        "dispatcher.wokers",
    ]
    assert all(e.source == str(path) for e in err.errors)
    assert err.path == "retry.max_attemps" and err.source == str(path)  # the first one's
    lines = str(err).splitlines()
    assert lines[0] == f"{path}: 4 errors:"
    assert lines[1].startswith("  retry.max_attemps: unknown option 'max_attemps'; did you mean")
    assert lines[2].startswith("  listeners[0].urll: unknown option 'urll'; did you mean 'url'?")
    assert lines[4].startswith("  dispatcher.wokers: unknown option 'wokers'")


def test_every_listener_is_checked_past_a_bad_one():
    listeners = [
        {"kind": "templated", "event_name": "a", "data": {}, "bogus": 1},
        {"kind": "recording", "event_name_regex": "("},
        {"kind": "nope", "event_name": "c"},
    ]
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=listeners)
    assert [e.path for e in info.value.errors] == [
        "listeners[0].bogus",
        "listeners[1].event_name_regex",
        "listeners[2].kind",
    ]


def test_a_misspelt_option_is_reported_as_unknown_with_its_suggestion_not_as_missing(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text("listeners:\n- kind: http\n  event_name: a\n  urll: http://127.0.0.1:9/\n")
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=str(path))
    assert info.value.errors == [info.value]
    assert info.value.path == "listeners[0].urll"
    assert str(info.value).startswith(
        f"{path}: listeners[0].urll: unknown option 'urll'; did you mean 'url'? "
        "(http listeners take: "
    )
    assert "required" not in str(info.value)


def test_an_option_missing_without_a_lookalike_comes_after_the_unknown_ones():
    listener = {"kind": "http", "event_name": "a", "zzz": 1}
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[listener])
    assert [(e.path, e.message.split(" (")[0]) for e in info.value.errors] == [
        ("listeners[0].zzz", "unknown option 'zzz'"),
        ("listeners[0]", "'url' is a required property"),
    ]


@pytest.mark.parametrize(
    ("config", "path", "takes"),
    [
        ({"retry": {"max_attemps": 3}}, "retry.max_attemps", "(retry takes: "),
        ({"dispatcher": {"wokers": 2}}, "dispatcher.wokers", "(dispatcher takes: "),
        ({"spool": {"paht": "x.db"}}, "spool.paht", "(spool takes: path)"),
        ({"outbox": {"urll": "postgresql://x"}}, "outbox.urll", "(outbox takes: "),
        ({"listners": []}, "listners", "(configs take: "),
        (
            {"listeners": [{"kind": "recording", "event_name": "e", "retry": {"tries": 2}}]},
            "listeners[0].retry.tries",
            "(retry takes: ",
        ),
    ],
)
def test_an_unknown_option_names_the_section_that_refused_it(config, path, takes):
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=config)
    assert info.value.path == path
    assert takes in info.value.message


def test_the_unquoted_template_warning_names_the_file_and_the_listener(tmp_path, caplog):
    path = tmp_path / "events.yaml"
    path.write_text(
        "listeners:\n"
        "- {kind: recording, event_name: a}\n"
        "- kind: templated\n  event_name: b\n  data:\n    n: {event_name}\n"
    )
    with caplog.at_level("WARNING", logger="eventisc"):
        eventisc.create_app(config_file=str(path)).close()
    [record] = [r for r in caplog.records if "unquoted YAML" in r.getMessage()]
    assert record.getMessage().startswith(f"{path}: listeners[1].data.n: the unquoted YAML")


def test_a_relative_config_file_not_found_names_the_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"config file not found \(looked for in {tmp_path}\)"):
        eventisc.create_app(config_file="missing.yaml")


def test_an_unknown_kind_without_a_lookalike_reads_as_a_sentence():
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[{"kind": "zzzzzz", "event_name": "e"}])
    assert info.value.message.startswith("unknown listener kind 'zzzzzz'. Known kinds: ")


def test_every_listener_delivery_mistake_is_reported_and_an_app_option_once():
    listeners = [
        {"kind": "recording", "event_name": "a", "ordering_key": "{event_name}"},
        {"kind": "recording", "event_name": "b"},
        {"kind": "recording", "event_name": "c", "ordering_key": "{event_name}"},
    ]
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=listeners)
    assert [e.path for e in info.value.errors] == [
        "listeners[0].ordering_key",
        "listeners[2].ordering_key",
    ]
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=listeners[1:2] * 3, durable=True)
    assert [e.path for e in info.value.errors] == ["durable"]
