"""The http kind against a real HTTP server (tests/receiver.py): bodies, queries, headers,
auth, timeouts, statuses, keep-alive, threads, fork, and the errors it raises."""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import requests
import urllib3

import eventisc
from eventisc import (
    ConfigError,
    ConnectError,
    DeliveryError,
    DeliveryTimeout,
    HTTPStatusError,
    TemplateError,
)
from eventisc.listeners.http import HttpListener, parse_retry_after, translate_error
from eventisc.listeners.http import listener as http_listener

from .faults import free_port
from .receiver import Response
from .support import failure, http, in_child

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")

# -- bodies, queries, headers --------------------------------------------------------------------


def test_json_body_is_posted_with_a_json_content_type(receiver):
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/hook", data={"n": "{event_data['n']}", "tag": "x"})]
    )
    assert app.trigger("e", {"n": 42}) == 1
    (req,) = receiver.wait_for(1)
    assert (req.method, req.path) == ("POST", "/hook")
    assert req.json == {"n": 42, "tag": "x"}
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"


def test_render_is_pure_and_its_payload_is_plain_json(receiver):
    listener = HttpListener(
        "e", receiver.url + "/p", method="put", data={"when": "{event_data['when']}"}
    )
    when = datetime.datetime(2024, 5, 1, 12, 0)
    notification = listener.render("e", {"when": when})
    assert receiver.requests == []  # rendering sent nothing
    assert notification.payload == {
        "method": "PUT",
        "url": receiver.url + "/p",
        "headers": {"Content-Type": "application/json; charset=utf-8"},
        "body": '{"when":"2024-05-01T12:00:00"}',
    }
    json.dumps(notification.payload)  # can be spooled as it is
    assert listener.deliver(notification) == "HTTP 200"
    assert receiver.wait_for(1)[0].method == "PUT"


def test_no_data_sends_no_body(receiver):
    app = eventisc.create_app(listeners=[http(receiver.url, method="DELETE")])
    assert app.trigger("e", {"n": 1}) == 1
    (req,) = receiver.wait_for(1)
    assert (req.method, req.body) == ("DELETE", b"")
    assert "Content-Type" not in req.headers


def test_form_body_with_list_values_repeats_the_key(receiver):
    app = eventisc.create_app(
        listeners=[
            http(
                receiver.url,
                request_format="form",
                data={
                    "id": "{event_data['id']}",
                    "tags": ["a", "{event_data['tag']}"],
                    "on": True,
                    "skipped": None,
                },
            )
        ]
    )
    assert app.trigger("e", {"id": 7, "tag": "b c&d"}) == 1
    (req,) = receiver.wait_for(1)
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.form == {"id": ["7"], "tags": ["a", "b c&d"], "on": ["True"]}


def test_form_with_a_nested_mapping_is_a_template_error_naming_the_field(receiver):
    app = eventisc.create_app(
        listeners=[http(receiver.url, request_format="form", data={"user": "{event_data['u']}"})],
        raise_errors=True,
    )
    exc = failure(app, "e", {"u": {"id": 1}})
    assert isinstance(exc, TemplateError)
    assert "data.user" in str(exc) and "mapping" in str(exc)
    assert exc.listener == "http:e"
    assert receiver.requests == []


def test_query_kwargs_render_into_query_string(receiver):
    app = eventisc.create_app(
        listeners=[
            http(
                receiver.url + "/q/{event_name}?{query_string}",
                query_kwargs={"user": "{event_data['id']}", "q": "a b&c", "ids": [1, 2]},
            )
        ]
    )
    assert app.trigger("e", {"id": 5}) == 1
    (req,) = receiver.wait_for(1)
    assert req.path == "/q/e"
    assert req.query == {"user": ["5"], "q": ["a b&c"], "ids": ["1", "2"]}


def test_query_kwargs_are_appended_when_the_url_has_no_query_string_field(receiver):
    listener = HttpListener(
        "e", receiver.url + "/q?fixed=1#frag", query_kwargs={"n": "{event_data}"}
    )
    url = listener.render("e", 3).payload["url"]
    assert url == receiver.url + "/q?fixed=1&n=3#frag"


def test_templated_headers_merge_over_requests_kwargs_headers(receiver):
    app = eventisc.create_app(
        listeners=[
            http(
                receiver.url,
                data={"a": 1},
                requests_kwargs={"headers": {"X-Static": "s", "X-Over": "old"}},
                headers={
                    "x-over": "{event_name}",
                    "X-User": "{event_data['id']}",
                    "X-Absent": "{event_data.get('none')}",
                    "Content-Type": "application/vnd.test+json",
                },
            )
        ]
    )
    assert app.trigger("e", {"id": 9}) == 1
    headers = {k.lower(): v for k, v in receiver.wait_for(1)[0].headers.items()}
    assert headers["x-static"] == "s"
    assert headers["x-over"] == "e"
    assert headers["x-user"] == "9"
    assert "x-absent" not in headers  # a header rendering to None is left out
    assert headers["content-type"] == "application/vnd.test+json"
    assert headers["user-agent"].startswith("eventisc/")


def test_a_header_named_in_another_case_is_sent_once_as_last_named(receiver):
    app = eventisc.create_app(
        listeners=[
            http(
                receiver.url,
                data={"a": 1},
                requests_kwargs={"headers": {"X-Over": "old", "accept": "text/plain"}},
                headers={"x-over": "{event_name}", "ACCEPT": "application/json"},
            )
        ]
    )
    assert app.trigger("e", {}) == 1
    received = receiver.wait_for(1)[0].headers
    assert {k: v for k, v in received.items() if k.lower() in ("x-over", "accept")} == {
        "x-over": "e",
        "ACCEPT": "application/json",
    }
    assert [k.lower() for k in received].count("idempotency-key") == 1


@pytest.mark.parametrize(
    "base, extras",
    [
        ({"Accept": "*/*"}, ({"Idempotency-Key": "1"}, {"Content-Type": "a"}, {}, {})),
        ({"Accept": "*/*"}, ({"Accept": "x"}, {"accept": "y"}, {"X-A": "1"}, {})),
        ({"X-A": "1", "x-a": "2"}, ({}, {"X-B": "3"}, {}, {})),
        ({"Accept": "*/*"}, ({"X-A": "1"}, {"x-a": "2", "X-A": "3"}, {}, {"X-a": "4"})),
    ],
)
def test_request_headers_merge_as_an_http_header_dict_would(base, extras):
    # The reference: an HTTPHeaderDict updated in turn (names in any case, the last naming
    # kept, in the place of the first).
    expected = urllib3.HTTPHeaderDict(base)
    for extra in extras:
        expected.update(extra)
    merged = http_listener._merged(base, http_listener._lower_names(base), extras)
    assert list(merged.items()) == list(expected.items())


def test_a_header_value_with_a_line_break_is_a_template_error(receiver):
    listener = HttpListener("e", receiver.url, headers={"X-Id": "{event_data}"})
    with pytest.raises(TemplateError, match="line break"):
        listener.render("e", "1\r\nX-Evil: 1")


def test_readme_example_with_auth_from_a_yaml_list(receiver, tmp_path):
    # Given the README's http listener, in a YAML file, pointing at the receiver
    config = tmp_path / "eventisc.yaml"
    config.write_text(
        f"""
name_prefix: myapp.
listeners:
- kind: http
  event_name: myapp.user_created
  url: {receiver.url}/send-welcome/
  requests_kwargs:
    auth: ["myuser", "password"]
  request_format: json
  data:
    user_id: "{{event_data['user'].id}}"
    email: "{{event_data['user'].email}}"
"""
    )
    app = eventisc.create_app(config_file=str(config), raise_errors=True)
    user = SimpleNamespace(id=7, email="ann@example.com")
    # When the code triggers the event with an object
    assert app.trigger("user_created", {"user": user}) == 1
    # Then the receiver gets the rendered JSON with Basic auth
    (req,) = receiver.wait_for(1)
    assert req.path == "/send-welcome/"
    assert req.json == {"user_id": 7, "email": "ann@example.com"}
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"myuser:password").decode(
        "ascii"
    )
    assert app.listeners[0].describe() == f"POST {receiver.url}/send-welcome/"


def test_describe_and_errors_mask_a_password_in_the_url():
    port = free_port()
    listener = HttpListener("e", f"http://bob:s3cret@127.0.0.1:{port}/send-welcome/", timeout=2)
    assert listener.describe() == f"POST http://bob:***@127.0.0.1:{port}/send-welcome/"
    with pytest.raises(ConnectError) as info:
        listener.notify("e", {})
    assert "s3cret" not in str(info.value)
    assert f"POST http://bob:***@127.0.0.1:{port}/send-welcome/" in str(info.value)


def test_cookies_set_by_the_receiver_are_not_sent_with_the_next_notification(receiver):
    receiver.respond(Response(headers={"Set-Cookie": "session=abc; Path=/"}))
    app = eventisc.create_app(listeners=[http(receiver.url + "/c")])
    assert app.trigger("e") == 1
    assert app.trigger("e") == 1
    first, second = receiver.wait_for(2)
    assert "Cookie" not in second.headers
    assert first.client == second.client  # same connection: only the cookie was dropped


# -- failures ------------------------------------------------------------------------------------


def test_a_non_2xx_status_is_a_failure_with_status_body_and_retry_after(receiver):
    body = b"<html>  service   down\n" + b"x" * 500
    receiver.respond(
        Response(503, body, {"Retry-After": "7"}), Response(503, body, {"Retry-After": "7"})
    )
    listener = http(receiver.url + "/hook")
    assert eventisc.create_app(listeners=[listener]).trigger("e") == 0
    app = eventisc.create_app(listeners=[listener], raise_errors=True)
    exc = failure(app, "e")
    assert isinstance(exc, HTTPStatusError)
    assert exc.status == 503 and exc.retry_after == 7.0 and exc.transient
    assert exc.body.startswith("<html> service down xxx")
    assert len(exc.body) <= 200
    assert f"POST {receiver.url}/hook: HTTP 503" in str(exc)
    assert exc.body in str(exc)


def test_a_4xx_status_is_not_transient(receiver):
    receiver.respond(Response(404, b"no such hook"))
    exc = failure(eventisc.create_app(listeners=[http(receiver.url)], raise_errors=True), "e")
    assert isinstance(exc, HTTPStatusError)
    assert (exc.status, exc.body, exc.retry_after, exc.transient) == (
        404,
        "no such hook",
        None,
        False,
    )


def test_success_status_can_accept_404_and_status_classes(receiver):
    receiver.respond(Response(404), Response(201), Response(500))
    listener = HttpListener("e", receiver.url, success_status=[404, "2xx"])
    assert listener.notify("e", {}) is True
    assert listener.notify("e", {}) is True
    with pytest.raises(HTTPStatusError):
        listener.notify("e", {})
    assert listener.success_status == frozenset([404, *range(200, 300)])


def test_connection_refused_is_a_connect_error(receiver, http_client):
    port = free_port()
    app = eventisc.create_app(
        listeners=[http(f"http://127.0.0.1:{port}/x", timeout=2)], raise_errors=True
    )
    exc = failure(app, "e")
    assert isinstance(exc, ConnectError) and exc.transient
    refused = {
        "requests": requests.ConnectionError,
        "urllib3": urllib3.exceptions.NewConnectionError,
    }
    assert isinstance(exc.__cause__, refused[http_client])
    assert f"POST http://127.0.0.1:{port}/x" in str(exc)
    assert "refused" in str(exc).lower()


def test_an_unknown_host_is_a_connect_error():
    # .invalid never resolves (RFC 6761).
    listener = HttpListener("e", "http://eventisc-test.invalid/x", timeout=2)
    with pytest.raises(ConnectError, match="POST http://eventisc-test.invalid/x: could not"):
        listener.notify("e", {})


def test_tls_to_a_plain_http_port_is_a_permanent_delivery_error(receiver, http_client):
    url = receiver.url.replace("http://", "https://")
    app = eventisc.create_app(listeners=[http(url, timeout=2)], raise_errors=True)
    exc = failure(app, "e")
    assert type(exc) is DeliveryError and not exc.transient
    tls = {"requests": requests.exceptions.SSLError, "urllib3": urllib3.exceptions.SSLError}
    assert isinstance(exc.__cause__, tls[http_client])
    assert f"POST {url}: TLS failed" in str(exc)


def test_a_missing_ca_bundle_in_the_config_is_a_config_error(receiver, tmp_path):
    url = receiver.url.replace("http://", "https://")
    missing = str(tmp_path / "ca.pem")
    with pytest.raises(ConfigError, match="no such CA bundle") as info:
        eventisc.create_app(listeners=[http(url, requests_kwargs={"verify": missing})])
    assert info.value.path == "listeners[0].requests_kwargs.verify"


@pytest.fixture
def clean_proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_http_proxy_from_the_environment_is_used(receiver, clean_proxy_env):
    # The receiver plays the proxy: requests sends it the absolute url of the target.
    clean_proxy_env.setenv("HTTP_PROXY", receiver.url)
    app = eventisc.create_app(
        listeners=[http("http://target.invalid/hook/{event_data[id]}", data="{event_data}")],
        raise_errors=True,
    )
    assert app.trigger("e", {"id": 1}) == 1
    assert app.trigger("e", {"id": 2}) == 1
    assert [(r.headers["Host"], r.path) for r in receiver.requests] == [
        ("target.invalid", "/hook/1"),
        ("target.invalid", "/hook/2"),
    ]


def test_no_proxy_from_the_environment_bypasses_the_proxy(receiver, clean_proxy_env):
    clean_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing there
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    app = eventisc.create_app(listeners=[http(receiver.url + "/hook")], raise_errors=True)
    assert app.trigger("e") == 1
    assert receiver.requests[0].path == "/hook"


def test_credentials_from_a_netrc_file_are_sent(receiver, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ada password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    app = eventisc.create_app(listeners=[http(receiver.url + "/hook")], raise_errors=True)
    assert app.trigger("e") == 1
    expected = "Basic " + base64.b64encode(b"ada:s3cret").decode()
    assert receiver.requests[0].headers["Authorization"] == expected


def test_a_missing_ca_bundle_from_the_environment_is_a_permanent_delivery_error(
    receiver, tmp_path, monkeypatch
):
    missing = str(tmp_path / "ca.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", missing)
    url = receiver.url.replace("http://", "https://")
    app = eventisc.create_app(listeners=[http(url)], raise_errors=True)
    exc = failure(app, "e")
    assert type(exc) is DeliveryError and missing in str(exc)


def test_a_slow_receiver_gives_a_delivery_timeout_after_about_the_timeout(receiver, http_client):
    delay, timeout = 2.0, 0.25
    receiver.respond(Response(delay=delay))
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/slow", timeout=[1, timeout])], raise_errors=True
    )
    start = time.monotonic()
    exc = failure(app, "e")
    elapsed = time.monotonic() - start
    assert isinstance(exc, DeliveryTimeout) and exc.transient
    slow = {"requests": requests.Timeout, "urllib3": urllib3.exceptions.ReadTimeoutError}
    assert isinstance(exc.__cause__, slow[http_client])
    assert f"POST {receiver.url}/slow: timed out waiting for the response (0.25 s)" in str(exc)
    # It gave up after about the read timeout, far sooner than the receiver's delay.
    assert timeout * 0.8 <= elapsed < delay / 2


def test_a_template_error_in_one_listener_does_not_stop_another(receiver):
    app = eventisc.create_app(
        listeners=[
            http(receiver.url + "/bad", data={"x": "{event_data['missing']}"}, name="bad"),
            http(receiver.url + "/good", data={"n": "{event_data['n']}"}, name="good"),
        ]
    )
    assert app.trigger("e", {"n": 1}) == 1
    (req,) = receiver.wait_for(1)
    assert req.path == "/good"


def test_unencodable_event_data_is_a_template_error_naming_the_listener(receiver):
    app = eventisc.create_app(
        listeners=[http(receiver.url, data="{event_data}", name="hook")], raise_errors=True
    )
    exc = failure(app, "e", {"obj": object()})
    assert isinstance(exc, TemplateError)
    assert exc.listener == "hook"
    assert "listener 'hook'" in str(exc) and "not JSON serializable" in str(exc)
    assert receiver.requests == []


def test_dry_run_renders_and_logs_but_sends_nothing(receiver, caplog):
    app = eventisc.create_app(
        listeners=[http(receiver.url, data={"n": "{event_data['n']}"})], dry_run=True
    )
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert app.trigger("e", {"n": 3}) == 1
    assert '{"n":3}' in caplog.text
    time.sleep(0.2)
    assert receiver.requests == []


# -- connections ---------------------------------------------------------------------------------


def test_twenty_events_reuse_one_connection(receiver):
    app = eventisc.create_app(listeners=[http(receiver.url, data={"i": "{event_data}"})])
    for i in range(20):
        assert app.trigger("e", i) == 1
    requests_ = receiver.wait_for(20)
    assert [r.json["i"] for r in requests_] == list(range(20))
    assert len(receiver.connections) == 1


def test_threads_at_once_share_a_few_keep_alive_connections(receiver):
    threads, per_thread = 8, 10
    app = eventisc.create_app(listeners=[http(receiver.url, data="{event_data}")])
    barrier = threading.Barrier(threads)
    results: list[int] = []

    def work(t):
        barrier.wait()
        results.extend(app.trigger("e", {"t": t, "i": i}) for i in range(per_thread))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    assert results == [1] * threads * per_thread
    assert len(receiver.wait_for(threads * per_thread)) == threads * per_thread
    # Connections are reused: at most one per thread, not one per event.
    assert len(receiver.connections) <= threads


def test_close_drops_connections_and_the_next_delivery_reconnects(receiver):
    app = eventisc.create_app(listeners=[http(receiver.url)])
    assert app.trigger("e") == 1
    app.close()
    assert app.trigger("e") == 1
    assert app.trigger("e") == 1
    first, second, third = receiver.wait_for(3)
    assert first.client != second.client
    assert second.client == third.client


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(receiver):
    app = eventisc.create_app(listeners=[http(receiver.url)])
    assert app.trigger("e", {"who": "parent"}) == 1
    assert in_child(lambda: app.trigger("e", {"who": "child"})) == (0, "1")
    assert app.trigger("e", {"who": "parent"}) == 1
    parent1, child, parent2 = receiver.wait_for(3)
    assert child.client != parent1.client
    assert parent2.client == parent1.client  # the parent's connection survived the child


# -- errors and values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, expected",
    [
        (requests.ConnectionError("refused"), ConnectError),
        (requests.exceptions.ProxyError("proxy down"), ConnectError),
        (requests.exceptions.ChunkedEncodingError("cut"), ConnectError),
        (requests.ConnectTimeout("slow connect"), DeliveryTimeout),
        (requests.ReadTimeout("slow read"), DeliveryTimeout),
        (requests.Timeout("slow"), DeliveryTimeout),
        (requests.exceptions.SSLError("bad certificate"), DeliveryError),
        (requests.TooManyRedirects("loop"), DeliveryError),
        (requests.exceptions.ContentDecodingError("bad gzip"), DeliveryError),
        (requests.exceptions.InvalidURL("bad"), DeliveryError),
        (requests.exceptions.InvalidSchema("ftp"), DeliveryError),
        (requests.exceptions.MissingSchema("none"), DeliveryError),
        (requests.exceptions.InvalidHeader("bad"), DeliveryError),
        (requests.exceptions.InvalidProxyURL("bad"), DeliveryError),
        (requests.exceptions.URLRequired("none"), DeliveryError),
        (requests.exceptions.RetryError("retries"), DeliveryError),
        (requests.exceptions.UnrewindableBodyError("body"), DeliveryError),
        (requests.exceptions.InvalidJSONError("json"), DeliveryError),
        (requests.HTTPError("status"), DeliveryError),
        (requests.RequestException("other"), DeliveryError),
        # A read timeout while streaming the body reaches us wrapped in a ConnectionError.
        (
            requests.ConnectionError(
                urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")
            ),
            DeliveryTimeout,
        ),
        (urllib3.exceptions.NewConnectionError(None, "refused"), ConnectError),
        (
            urllib3.exceptions.NameResolutionError("h", None, socket.gaierror(-2, "unknown")),
            ConnectError,
        ),
        (urllib3.exceptions.ProtocolError("reset"), ConnectError),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "slow"), DeliveryTimeout),
        (urllib3.exceptions.ConnectTimeoutError(None, "slow connect"), DeliveryTimeout),
        (urllib3.exceptions.SSLError("bad certificate"), DeliveryError),
        (ssl.SSLCertVerificationError("bad certificate"), DeliveryError),
        (ConnectionResetError(104, "Connection reset by peer"), ConnectError),
        (OSError(113, "No route to host"), ConnectError),
        (OSError("Could not find a suitable TLS CA certificate bundle"), DeliveryError),
        (TimeoutError("timed out"), DeliveryTimeout),
        (urllib3.exceptions.LocationParseError("'h..x', label empty or too long"), DeliveryError),
        # Not a driver error: requests (or an auth object) failing on a value it was given.
        (OverflowError("timestamp out of range for platform time_t"), DeliveryError),
        (TypeError("expected string or bytes-like object"), DeliveryError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_translate_error_maps_every_driver_error(exc, expected):
    err = translate_error(exc, "POST http://host/x")
    assert type(err) is expected
    assert str(err).startswith("POST http://host/x: ")
    assert err.transient == (expected in (ConnectError, DeliveryTimeout))


def test_the_error_message_names_the_os_error_not_the_pool():
    try:
        requests.post(f"http://127.0.0.1:{free_port()}/p", timeout=2)
    except requests.RequestException as exc:
        err = translate_error(exc, "POST url")
    assert str(err) == ("POST url: could not connect or the connection broke: Connection refused")


def test_retry_after_parsing():
    now = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
    later = email.utils.format_datetime(now + datetime.timedelta(seconds=90), usegmt=True)
    earlier = email.utils.format_datetime(now - datetime.timedelta(hours=1), usegmt=True)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after(later, now) == 90.0
    assert parse_retry_after(earlier, now) == 0.0
    for unusable in (None, "", "-5", "soon", "Mon, 99 Foo 2024 00:00:00 GMT"):
        assert parse_retry_after(unusable, now) is None


def test_requests_kwargs_timeout_is_used_when_timeout_is_not_given():
    assert HttpListener("e", "http://h/", requests_kwargs={"timeout": 3}).timeout == 3.0
    assert HttpListener("e", "http://h/", timeout=[1, 5]).timeout == (1.0, 5.0)
    assert HttpListener("e", "http://h/").timeout == 10.0


@pytest.mark.parametrize(
    "options, path, message",
    [
        ({"method": "FETCH"}, "listeners[0].method", "unknown method 'FETCH'"),
        ({"request_format": "xml"}, "listeners[0].request_format", "xml"),
        (
            {"request_format": "form", "data": [1, 2]},
            "listeners[0].data",
            "must be a mapping",
        ),
        (
            {"request_format": "form", "data": "text {event_name}"},
            "listeners[0].data",
            "must be a mapping",
        ),
        ({"requests_kwargs": {"json": {}}}, "listeners[0].requests_kwargs.json", "`data`"),
        ({"requests_kwargs": {"params": {}}}, "listeners[0].requests_kwargs.params", "query"),
        ({"requests_kwargs": {"method": "get"}}, "listeners[0].requests_kwargs.method", "method"),
        ({"requests_kwargs": {"stream": True}}, "listeners[0].requests_kwargs.stream", "stream"),
        ({"requests_kwargs": {"sttream": 1}}, "listeners[0].requests_kwargs.sttream", "unknown"),
        (
            {"requests_kwargs": {"hooks": {"request": []}}},
            "listeners[0].requests_kwargs.hooks",
            "only `response`",
        ),
        (
            {"timeout": 5, "requests_kwargs": {"timeout": 5}},
            "listeners[0].requests_kwargs.timeout",
            "once",
        ),
        ({"requests_kwargs": {"timeout": None}}, "listeners[0].requests_kwargs.timeout", "> 0"),
        ({"requests_kwargs": {"auth": ["a"]}}, "listeners[0].requests_kwargs.auth", ""),
        ({"timeout": -1}, "listeners[0].timeout", ""),
        ({"success_status": ["6xx"]}, "listeners[0].success_status[0]", ""),
        ({"url": "ftp://host/x"}, "listeners[0].url", "not an http"),
        ({"url": "ftp://{event_name}/x"}, "listeners[0].url", "not an http"),
        ({"url": "http://h/{event_nam}"}, "listeners[0].url", "event_nam"),
        ({"headers": {"Bad Name": "x"}}, "listeners[0].headers", "header name"),
    ],
)
def test_bad_options_fail_at_load_with_their_path(options, path, message):
    listener = {"kind": "http", "event_name": "e", "url": "http://h/", **options}
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[listener])
    assert info.value.path == path
    assert message in info.value.message


def test_bad_options_in_a_yaml_file_name_the_file_and_the_path(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text(
        "listeners:\n- kind: http\n  event_name: e\n  url: http://h/\n"
        "  requests_kwargs:\n    data: {a: 1}\n"
    )
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=str(config))
    assert info.value.source == str(config)
    assert info.value.path == "listeners[0].requests_kwargs.data"


def test_importing_eventisc_does_not_import_requests():
    code = "import sys, eventisc; sys.exit('requests' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
