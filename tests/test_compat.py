"""event-isc compatibility: its README config, and custom kinds and code written for it.

A kind written for event-isc renders its own templated options with ``self.format`` in
``_do_notify``; its dry-run hook is ``_do_notify_dryrun``; its app class is ``EventApp``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest

import eventisc
from eventisc import ConfigError, TemplateError
from eventisc import template as template_module
from eventisc.listeners.base import FORMAT_TEMPLATES

from .kinds import DecliningListener, RecordingListener, TemplatedListener
from .support import run_cli

ROOT = Path(__file__).resolve().parent.parent

# The YAML of event-isc's README, verbatim but for the receiver's address.
EVENT_ISC_YAML = """\
name_prefix: myapp.
listeners:
- kind: http
  event_name: myapp.user_created
  url: {url}/send-welcome/
  requests_kwargs:
    auth: ["myuser", "password"]
  request_format: json
  data:
    user_id: "{{event_data['user'].id}}"
    email: "{{event_data['user'].email}}"
- kind: celery
  event_name_regex: myapp[.].*_created
  queue: foo_service
  task_name: foo_handle_created
  task_kwargs:
    event_name: {{event_name}}
    event_data: {{event_data}}
"""


class User:
    id = 42
    email = "ada@example.com"


def load(tmp_path, monkeypatch, url):
    path = tmp_path / "events.yaml"
    path.write_text(EVENT_ISC_YAML.format(url=url))
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    return eventisc.get_current_app()


def test_readme_config_routes_as_documented(tmp_path, monkeypatch, receiver, caplog):
    with caplog.at_level(logging.WARNING, logger="eventisc"):
        app = load(tmp_path, monkeypatch, receiver.url)
    # The unquoted {event_name} / {event_data} are read as templates, with a warning each.
    assert caplog.text.count("unquoted YAML") == 2
    assert [lis.kind for lis in app.routes("user_created")] == ["http", "celery"]
    assert [lis.kind for lis in app.routes("foo_created")] == ["celery"]
    celery = app.listeners[1]
    notification = celery.render("myapp.foo_created", {"foo": "bar"})
    assert notification.payload["task_name"] == "foo_handle_created"
    assert notification.payload["queue"] == "foo_service"
    assert notification.payload["kwargs"] == {
        "event_name": "myapp.foo_created",
        "event_data": {"foo": "bar"},
    }


def test_readme_http_listener_delivers(tmp_path, monkeypatch, receiver):
    app = load(tmp_path, monkeypatch, receiver.url)
    http = app.listeners[0]
    http.deliver(http.render("myapp.user_created", {"user": User()}))
    (request,) = receiver.wait_for(1)
    assert request.path == "/send-welcome/"
    assert request.json == {"user_id": 42, "email": "ada@example.com"}
    assert request.headers["Authorization"] == "Basic bXl1c2VyOnBhc3N3b3Jk"  # myuser:password


def test_readme_dry_run_counts_both_listeners(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("EVENTISC_DRYRUN", "1")
    load(tmp_path, monkeypatch, receiver.url)
    assert eventisc.trigger("user_created", {"user": User()}) == 2
    assert eventisc.trigger("foo_created", {"foo": "bar"}) == 1
    assert receiver.requests == []


def test_example_config_of_the_repository_is_valid():
    result = run_cli("check", str(ROOT / "examples" / "config.yaml"))
    assert result.returncode == 0, result.stderr
    assert "OK, 3 listener(s)" in result.stdout


# -- a custom kind written for event-isc, unchanged ---------------------------------------------


class WebhookListener(eventisc.Listener):
    """A custom kind as written for event-isc 0.1.0: ``_do_notify`` renders its own templated
    options with ``self.format`` (the same source runs on event-isc)."""

    kind = "compat_webhook"
    sent: list[tuple[str, str, dict]] = []

    def __init__(self, event_name, url, data=None, query_kwargs=None, filter=None):
        super().__init__(event_name, filter)
        self.url = url
        self.data = data or {}
        self.query_kwargs = query_kwargs or {}

    def _do_notify(self, event_name, event_data):
        query = {k: self.format(v, event_name, event_data) for k, v in self.query_kwargs.items()}
        query_string = urlencode(query)
        url = self.format(self.url, event_name, event_data, query_string=query_string)
        data = {k: self.format(v, event_name, event_data) for k, v in self.data.items()}
        WebhookListener.sent.append((event_name, url, data))
        return True


class QuietWebhookListener(WebhookListener):
    """An event-isc kind with its own dry-run hook."""

    kind = "compat_quiet_webhook"
    dry_runs: list[tuple[str, object]] = []

    def _do_notify_dryrun(self, event_name, event_data):
        QuietWebhookListener.dry_runs.append((event_name, event_data))
        return "would send"


WEBHOOK_YAML = """\
name_prefix: shop.
listeners:
- kind: compat_webhook
  name: webhook
  event_name: shop.order_paid
  url: "https://hooks.example.com/{event_name}?{query_string}"
  query_kwargs:
    ref: "{event_data[order][id]}"
  data:
    user_id: "{event_data['user']['id']}"
    user: "{event_data[user]}"
    greeting: "Hello {event_data[user][name]}!"
    total: "{event_data[order][total]:.2f} EUR"
    meta:
      source: "{event_name}"
    constant: 3
- kind: compat_webhook
  name: audit
  event_name_regex: "shop[.]order_.*"
  url: "https://audit.example.com/{event_data[order][id]}"
  filter:
    kind: expr
    expr: "event_data['order']['total'] > 50"
"""

ORDER = {"user": {"id": 7, "name": "Ada"}, "order": {"id": 1234, "total": 99.5}}


@pytest.fixture
def webhook_app(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(WEBHOOK_YAML)
    WebhookListener.sent.clear()
    QuietWebhookListener.dry_runs.clear()
    app = eventisc.create_app(config_file=str(path))
    yield app
    app.close()


def test_a_custom_kind_renders_its_fields_with_self_format(webhook_app):
    assert webhook_app.trigger("order_paid", ORDER) == 2
    (name, url, data), (_, audit_url, audit_data) = WebhookListener.sent
    assert name == "shop.order_paid"
    assert url == "https://hooks.example.com/shop.order_paid?ref=1234"  # a kwarg: query_string
    assert data == {
        "user_id": 7,  # one field: the type is kept
        "user": {"id": 7, "name": "Ada"},  # a dict stays a dict
        "greeting": "Hello Ada!",  # mixed text: a string
        "total": "99.50 EUR",  # a format spec
        "meta": {"source": "{event_name}"},  # not a string: passed through, as in event-isc
        "constant": 3,
    }
    assert type(data["user_id"]) is int and data["user"] is ORDER["user"]
    assert (audit_url, audit_data) == ("https://audit.example.com/1234", {})


def test_the_filter_and_the_regex_of_a_custom_kind_apply(webhook_app):
    cheap = {**ORDER, "order": {"id": 1, "total": 5}}
    assert webhook_app.trigger("order_paid", cheap) == 1  # the audit filter says no
    assert webhook_app.trigger("order_refunded", ORDER) == 1  # only the regex matches
    assert [url for _, url, _ in WebhookListener.sent] == [
        "https://hooks.example.com/shop.order_paid?ref=1",
        "https://audit.example.com/1234",
    ]


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        ("{event_data['user']['id']}", {}, 7),
        ("{event_data[order][total]}", {}, 99.5),
        ("{event_data[user]}", {}, {"id": 7, "name": "Ada"}),
        ("{event_data['user']['id'] > 5}", {}, True),
        ("{event_name}", {}, "shop.order_paid"),
        ("{event_name}/{event_data[user][id]}", {}, "shop.order_paid/7"),
        ("{event_data[order][total]:.1f}", {}, "99.5"),
        ("{{literal}} {event_name}", {}, "{literal} shop.order_paid"),
        ("/hook?{query_string}", {"query_string": "a=1"}, "/hook?a=1"),
        ("{query_string}", {"query_string": ["a", 1]}, ["a", 1]),
        (
            "{queue_kwargs[queue]}-{event_name}",
            {"queue_kwargs": {"queue": "q"}},
            "q-shop.order_paid",
        ),
        ("no fields", {}, "no fields"),
        ("only a closing } brace", {}, "only a closing } brace"),
        ({"a": "{event_name}"}, {}, {"a": "{event_name}"}),
        (["{event_name}"], {}, ["{event_name}"]),
        (42, {}, 42),
        (None, {}, None),
    ],
)
def test_format_renders_like_event_isc(value, kwargs, expected):
    result = eventisc.Listener.format(value, "shop.order_paid", ORDER, **kwargs)
    assert result == expected
    assert type(result) is type(expected)
    # A classmethod: called on a kind or an instance alike.
    assert WebhookListener.format(value, "shop.order_paid", ORDER, **kwargs) == expected


def test_format_is_sandboxed():
    with pytest.raises(TemplateError) as info:
        eventisc.Listener.format("{__import__('os').getcwd()}", "e", {})
    assert "names starting with `_` are private" in str(info.value)
    with pytest.raises(TemplateError, match="`.format` is not allowed"):
        eventisc.Listener.format("{'{0.__class__}'.format(event_data)}", "e", {})


def test_format_compiles_each_template_once(monkeypatch):
    compiled = []
    real = template_module.compile_template

    def counting(value, *args, **kwargs):
        compiled.append(value)
        return real(value, *args, **kwargs)

    monkeypatch.setattr(template_module, "compile_template", counting)
    fmt = eventisc.Listener.format
    template = "{event_name}:{event_data[n]}:compiled-once"
    assert [fmt(template, "e", {"n": n}) for n in range(3)] == [
        "e:0:compiled-once",
        "e:1:compiled-once",
        "e:2:compiled-once",
    ]
    # The same string with other keyword names may use other names: compiled for them once.
    with_kwargs = "{a}{b}{event_name}:compiled-once"
    assert fmt(with_kwargs, "e", {}, a=1, b=2) == "12e:compiled-once"
    assert fmt(with_kwargs, "e", {}, b=3, a=4) == "43e:compiled-once"
    assert compiled == [template, with_kwargs]


def test_a_template_is_compiled_for_the_keyword_names_it_is_given():
    template = "{event_name}{extra}:names"
    with pytest.raises(TemplateError, match="unknown name `extra`"):
        eventisc.Listener.format(template, "e", {})
    assert eventisc.Listener.format(template, "e", {}, extra="!") == "e!:names"
    with pytest.raises(TemplateError, match="unknown name `extra`"):
        eventisc.Listener.format(template, "e", {}, other="?")


def test_format_cache_is_bounded(monkeypatch):
    assert FORMAT_TEMPLATES.maxsize == 4096
    monkeypatch.setattr(FORMAT_TEMPLATES, "maxsize", 8)
    FORMAT_TEMPLATES.clear()
    for n in range(50):
        assert eventisc.Listener.format(f"{{event_data}}-{n}", "e", "x") == f"x-{n}"
    assert len(FORMAT_TEMPLATES) == 8
    assert FORMAT_TEMPLATES.lookup("{event_data}-49") is not None  # the newest stay
    assert FORMAT_TEMPLATES.lookup("{event_data}-0") is None  # the oldest went first


def test_format_from_many_threads(monkeypatch):
    # Given a small cache that many threads fill and evict at once ...
    monkeypatch.setattr(FORMAT_TEMPLATES, "maxsize", 16)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        barrier.wait()
        try:
            for n in range(300):
                template = f"{{event_data[n]}}-{n % 40}-{{event_name}}"
                assert eventisc.Listener.format(template, f"t{t}", {"n": n}) == f"{n}-{n % 40}-t{t}"
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # ... every render is right and the bound holds.
    assert errors == []
    assert len(FORMAT_TEMPLATES) <= 16


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{event_data['missing']}", "no key 'missing'"),
        ("{event_data[user].nope}", "AttributeError"),
        ("{event_data['user'", "cannot be compiled: it is missing a closing `}`"),
        ("{unknown}", "cannot be compiled: unknown name `unknown`"),
        ("{query_string}", "cannot be compiled: unknown name `query_string`"),
        ("{" + "-" * 100_000 + "1}", "is nested too deeply to compile"),
    ],
)
def test_format_failures_are_template_errors_naming_the_template(value, message):
    for _ in range(2):  # a template that does not compile fails the same way from the cache
        with pytest.raises(TemplateError) as info:
            eventisc.Listener.format(value, "e", {"user": None})
        assert message in str(info.value)
        assert info.value.template == value
        assert f"template `{value}`" in str(info.value)


def test_a_missing_key_fails_that_delivery_with_a_template_error(webhook_app, caplog):
    # Given an event without the user the webhook's templates need ...
    order = {"order": {"id": 1, "total": 99.5}}
    # When it is triggered, the other listener still delivers ...
    with caplog.at_level(logging.ERROR, logger="eventisc"):
        assert webhook_app.trigger("order_paid", order) == 1
    # ... and the webhook's failure is logged: a TemplateError naming the listener and template.
    (record,) = [r for r in caplog.records if r.exc_info]
    error = record.exc_info[1]
    assert isinstance(error, TemplateError)
    assert error.template == "{event_data['user']['id']}"
    assert error.listener == "webhook"
    assert "no key 'user'" in str(error) and "listener 'webhook'" in str(error)
    report = webhook_app.dispatch("order_paid", order)
    assert report["webhook"].status == "failed"
    assert isinstance(report["webhook"].error, TemplateError)
    assert report["audit"].status == "delivered"


def test_raise_errors_makes_it_a_trigger_error(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(WEBHOOK_YAML)
    app = eventisc.create_app(config_file=str(path), raise_errors=True)
    with pytest.raises(eventisc.TriggerError) as info:
        app.trigger("order_paid", {"order": {"id": 1, "total": 99.5}})
    ((name, error),) = info.value.failures
    assert name == "webhook" and info.value.notified == 1
    assert isinstance(error, TemplateError)
    assert "template `{event_data['user']['id']}`: no key 'user'" in str(info.value)


def test_notify_matches_filters_and_delivers_one_listener(webhook_app):
    webhook, audit = webhook_app.listeners
    assert webhook.notify("shop.order_paid", ORDER) is True
    assert webhook.notify("shop.other", ORDER) is False  # not its event
    assert audit.notify("shop.order_x", {**ORDER, "order": {"id": 2, "total": 1}}) is False
    assert audit.notify("shop.order_x", ORDER) is True
    assert [url for _, url, _ in WebhookListener.sent] == [
        "https://hooks.example.com/shop.order_paid?ref=1234",
        "https://audit.example.com/1234",
    ]
    with pytest.raises(TemplateError, match="no key 'user'"):  # no app here to catch it
        webhook.notify("shop.order_paid", {"order": {"id": 1, "total": 2}})


def test_notify_declined_is_false():
    declining = DecliningListener("e")
    assert declining.notify("e", {}) is False
    recording = RecordingListener("e")
    assert recording.notify("e", {"a": 1}) is True and recording.calls == [("e", {"a": 1})]


def test_notify_honours_eventisc_dryrun_at_each_call(webhook_app, monkeypatch, caplog):
    webhook = webhook_app.listeners[0]
    monkeypatch.setenv("EVENTISC_DRYRUN", "yes")
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert webhook.notify("shop.order_paid", ORDER) is True
    assert WebhookListener.sent == []
    assert "dry-run: listener 'webhook' would send" in caplog.text
    monkeypatch.setenv("EVENTISC_DRYRUN", "0")
    assert webhook.notify("shop.order_paid", ORDER) is True
    assert len(WebhookListener.sent) == 1


def test_app_dry_run_sends_nothing_from_a_custom_kind(tmp_path, monkeypatch, caplog):
    path = tmp_path / "events.yaml"
    path.write_text(WEBHOOK_YAML)
    WebhookListener.sent.clear()
    monkeypatch.setenv("EVENTISC_DRYRUN", "1")
    app = eventisc.create_app(config_file=str(path))
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert app.trigger("order_paid", ORDER) == 2
    assert WebhookListener.sent == []
    assert caplog.text.count("would send") == 2


def test_dry_run_logs_the_masked_payload_of_a_kind_without_a_hook(caplog):
    listener = RecordingListener("e", name="rec")
    notification = listener.render("e", {"url": "amqp://guest:secret@broker/"})
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert listener.dry_run(notification) is True
    assert listener.calls == []
    (record,) = caplog.records
    assert record.name.partition(".")[0] == "eventisc" and record.levelno == logging.INFO
    assert record.getMessage() == (
        "dry-run: listener 'rec' would send {'event_data': {'url': 'amqp://guest:***@broker/'}}"
    )
    assert (record.event_name, record.listener, record.attempt, record.outcome) == (
        "e",
        "rec",
        0,
        "dry-run",
    )


def test_dry_run_of_a_kind_with_its_own_render_logs_its_payload(caplog):
    listener = TemplatedListener("e", data={"auth": "{event_data[key]}"}, name="tpl")
    notification = listener.render("e", {"key": "http://u:pw@host/"})
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert listener.dry_run(notification) is True
    assert "would send {'data': {'auth': 'http://u:***@host/'}}" in caplog.text
    assert notification not in TemplatedListener.delivered


def test_dry_run_calls_an_event_isc_dry_run_hook(webhook_app, caplog):
    hooked = QuietWebhookListener("shop.order_paid", url="https://x/")
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert hooked.dry_run(hooked.render("shop.order_paid", ORDER)) is True
    assert QuietWebhookListener.dry_runs == [("shop.order_paid", ORDER)]
    assert caplog.text == ""  # the hook decides what to show
    assert WebhookListener.sent == []


def test_dry_run_returns_the_truth_value_of_the_hook():
    class Declines(RecordingListener):
        kind = "compat_declines_dry_run"

        def _do_notify_dryrun(self, event_name, event_data):
            self.calls.append(("dry", event_data))
            return None

    listener = Declines("e")
    assert listener.dry_run(listener.render("e", {"a": 1})) is False
    assert listener.calls == [("dry", {"a": 1})]


def test_a_hook_on_a_kind_with_its_own_render_gets_the_rendered_payload():
    seen = []

    class Hooked(TemplatedListener):
        kind = "compat_hooked_templated"

        def _do_notify_dryrun(self, event_name, event_data):
            seen.append((event_name, event_data))
            return super()._do_notify_dryrun(event_name, event_data)

    listener = Hooked("e", data={"n": "{event_data[n]}"})
    assert listener.dry_run(listener.render("e", {"n": 5})) is True
    assert seen == [("e", {"data": {"n": 5}})]


def test_the_base_dry_run_hook_logs_like_event_isc(caplog):
    listener = RecordingListener("e", name="rec")
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert listener._do_notify_dryrun("e", {"token": "x", "url": "http://a:b@h/"}) is True
    (record,) = caplog.records
    assert record.name.partition(".")[0] == "eventisc"  # the eventisc logger, or one below it
    assert record.getMessage() == (
        "EVENTISC_DRYRUN=Y _do_notify(e, {'token': 'x', 'url': 'http://a:***@h/'})"
    )
    assert (record.listener, record.outcome) == ("rec", "dry-run")
    assert listener.calls == []


# -- event-isc's names --------------------------------------------------------------------------


def test_event_app_is_event_isc_s_app_class():
    assert eventisc.EventApp is eventisc.App
    assert eventisc.EventiscApp is eventisc.App
    assert "EventApp" not in eventisc.__all__  # not documented as API: new code says App
    WebhookListener.sent.clear()
    # event-isc's constructor: EventApp(name_prefix, listeners), positionally.
    app = eventisc.EventApp(
        "shop.",
        [{"kind": "compat_webhook", "event_name": "shop.order_paid", "url": "/{event_name}"}],
    )
    assert app.name_prefix == "shop."
    app.add_listener({"kind": "compat_webhook", "event_name": "shop.x", "url": "/x"})
    assert app.trigger("order_paid", ORDER) == 1 and app.trigger("x", {}) == 1
    assert [url for _, url, _ in WebhookListener.sent] == ["/shop.order_paid", "/x"]
    assert eventisc.EventApp().name_prefix == "" and eventisc.EventApp(None, None).listeners == []


def test_listener_and_filter_lookups_as_event_isc_code_uses_them():
    assert eventisc.Listener.get("compat_webhook") is WebhookListener
    assert eventisc.Listener.get("http").kind == "http"
    assert eventisc.Filter.get("expr") is eventisc.ExprFilter
    with pytest.raises(ConfigError, match="did you mean 'compat_webhook'"):
        eventisc.Listener.get("compat_webhok")
    # event-isc's EventApp.add_listener: Listener.from_dict(mapping), regex and filter included.
    listener = eventisc.Listener.from_dict(
        {
            "kind": "compat_webhook",
            "event_name_regex": "shop[.].*",
            "url": "/{event_name}",
            "filter": {"kind": "expr", "expr": "event_data['n'] > 1"},
        }
    )
    assert isinstance(listener, WebhookListener)
    WebhookListener.sent.clear()
    assert listener.notify("shop.a", {"n": 2}) is True
    assert listener.notify("shop.b", {"n": 1}) is False
    assert listener.notify("other.a", {"n": 2}) is False
    assert [url for _, url, _ in WebhookListener.sent] == ["/shop.a"]
    keep = eventisc.Filter.from_dict({"kind": "expr", "expr": "event_name.endswith('_paid')"})
    assert keep("shop.order_paid", {}) is True and keep("shop.order_x", {}) is False
