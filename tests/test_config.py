"""Loading configs: files, formats, and one clear ConfigError for each kind of bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

import eventisc
from eventisc import ConfigError, Listener
from eventisc.schema import config_schema

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
        assert app.source == str(path)


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
