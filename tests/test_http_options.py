"""The http kind's options checked when they are loaded (urls, durations, requests_kwargs),
values checked at render, and no exception but an EventiscError out of ``deliver``."""

from __future__ import annotations

import math

import pytest

import eventisc
from eventisc import ConfigError, DeliveryError, TemplateError
from eventisc.listeners.http import HttpListener, translate_error
from eventisc.notification import Notification

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")


def load(**options):
    listener = {"kind": "http", "event_name": "e", "url": "http://h/", **options}
    return eventisc.create_app(listeners=[listener])


# -- urls ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://h:abc/", "bad host or port"),
        ("http://h:99999/", "bad host or port"),
        ("http://h:-1/x", "bad host or port"),
        ("http://h:0/", "port 0"),
        ("http://h:80:90/", "bad host or port"),
        ("http://fe80::1/x", "IPv6 address without brackets"),
        ("http://::1:8080/", "IPv6 address without brackets"),
        ("http://[::1/", "bad host or port"),
        ("http://[::1]x/", "not a valid URL"),
        ("http://a b/", "space in its host"),
        ("http://h/a\nb", "control character"),
        ("http://h\r\n/", "control character"),
        ("http://h/\x00", "control character"),
        ("http://h..x/", "not a valid URL"),
        ("http://*.h/", "not a valid URL"),
        ("http://" + "a" * 64 + ".com/", "not a valid URL"),
        ("http://h\u3002/", "not a valid URL"),
        ("http://u:pw@/x", "with a host"),
    ],
)
def test_a_constant_url_that_cannot_be_sent_fails_at_load(url, message):
    with pytest.raises(ConfigError) as info:
        load(url=url)
    assert info.value.path == "listeners[0].url"
    assert message in info.value.message
    assert "pw" not in info.value.message


@pytest.mark.parametrize(
    "url",
    ["http://h:abc/{event_name}", "http://h:99999/x?q={event_name}", "http://h/{event_name}\n"],
)
def test_the_constant_start_of_a_templated_url_is_checked_at_load(url):
    with pytest.raises(ConfigError) as info:
        load(url=url)
    assert info.value.path == "listeners[0].url"


@pytest.mark.parametrize(
    "host, message",
    [
        ("h:abc", "bad host or port"),
        ("h:99999", "bad host or port"),
        ("h:0", "port 0"),
        ("fe80::1", "IPv6 address without brackets"),
        ("a b", "space in its host"),
        ("h/\n", "control character"),
    ],
)
def test_a_templated_url_that_cannot_be_sent_is_a_template_error(host, message):
    listener = HttpListener("e", "http://{event_data[host]}/x")
    with pytest.raises(TemplateError, match=message):
        listener.render("e", {"host": host})


def test_a_templated_url_with_a_good_host_renders():
    listener = HttpListener("e", "http://{event_data[host]}/x")
    assert listener.render("e", {"host": "[::1]:8080"}).payload["url"] == "http://[::1]:8080/x"


# -- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout",
    [math.inf, -math.inf, math.nan, [1, math.inf], [math.nan, 1], 1e300, 86401],
    ids=str,
)
def test_a_timeout_that_is_not_finite_seconds_fails_at_load_from_python(timeout):
    # The JSON Schema checks config files; the Python API goes through the same parsing.
    with pytest.raises(ConfigError) as info:
        HttpListener("e", "http://h/", timeout=timeout)
    assert info.value.path == "timeout"
    assert "finite" in info.value.message or "at most" in info.value.message


@pytest.mark.parametrize("key", ["timeout", "deadline"])
def test_an_infinite_duration_in_a_config_fails_at_load(key):
    with pytest.raises(ConfigError) as info:
        load(**{key: math.inf})
    assert info.value.path == f"listeners[0].{key}"


def test_an_infinite_requests_kwargs_timeout_fails_at_load():
    with pytest.raises(ConfigError) as info:
        HttpListener("e", "http://h/", requests_kwargs={"timeout": math.inf})
    assert info.value.path == "requests_kwargs.timeout"


def test_a_timeout_of_a_day_is_accepted():
    assert HttpListener("e", "http://h/", timeout=[86400, 86400]).timeout == (86400.0, 86400.0)


# -- requests_kwargs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, path, message",
    [
        ({"proxies": {"http": 123}}, "proxies.http", "a proxy is a URL"),
        ({"proxies": {"http": "http://p:abc"}}, "proxies.http", "bad host or port"),
        ({"proxies": "http://p"}, "proxies", "mapping"),
        ({"verify": 5}, "verify", "CA bundle"),
        ({"cert": 5}, "cert", "cert file"),
        ({"cert": ["a", 5]}, "cert", "cert file"),
        ({"cookies": {"sid": 5}}, "cookies.sid", "text"),
        ({"cookies": {"sid": "a\nb"}}, "cookies.sid", "control"),
        ({"cookies": {"sid": "a;b=c"}}, "cookies.sid", "`;`"),
        ({"cookies": {"a b": "x"}}, "cookies", "cookie name"),
        ({"auth": ["ann", "\u2603"]}, "auth", "latin-1"),
        ({"auth": "ann:pw"}, "auth", "[user, password]"),
        ({"headers": {"X-Name": "\u2603"}}, "headers.X-Name", "latin-1"),
        ({"headers": {"X-Name": "a\r\nX-Evil: 1"}}, "headers.X-Name", "line break"),
        ({"allow_redirects": "yes"}, "allow_redirects", "true or false"),
    ],
)
def test_requests_kwargs_that_requests_would_fail_on_fail_at_load(options, path, message):
    with pytest.raises(ConfigError) as info:
        HttpListener("e", "http://h/", requests_kwargs=options)
    assert info.value.path == f"requests_kwargs.{path}"
    assert message in info.value.message


def test_a_socks_proxy_without_pysocks_names_the_extra():
    pytest.importorskip("requests")
    try:
        import socks  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"requests\[socks\]"):
            HttpListener("e", "http://h/", requests_kwargs={"proxies": {"http": "socks5://p:1"}})
    else:  # pragma: no cover - PySocks installed
        HttpListener("e", "http://h/", requests_kwargs={"proxies": {"http": "socks5://p:1"}})


def test_latin_1_header_values_and_credentials_are_accepted():
    listener = HttpListener(
        "e",
        "http://h/",
        headers={"X-Name": "{event_data}"},
        requests_kwargs={"auth": ["jos\u00e9", "pw"], "headers": {"X-City": "K\u00f6ln"}},
    )
    assert listener.render("e", "Zo\u00eb").payload["headers"]["X-Name"] == "Zo\u00eb"


def test_a_header_rendering_outside_latin_1_is_a_template_error():
    listener = HttpListener("e", "http://h/", headers={"X-Name": "{event_data}"})
    with pytest.raises(TemplateError, match="latin-1"):
        listener.render("e", "\u2603")


@pytest.mark.parametrize(
    "options",
    [
        {"data": {"a": "{event_data}"}, "request_format": "form"},
        {"query_kwargs": {"q": "{event_data}"}},
        {"url": "http://h/{event_data}"},
    ],
    ids=["form", "query", "url"],
)
def test_a_lone_surrogate_is_a_template_error_not_a_unicode_error(options):
    listener = HttpListener("e", **{"url": "http://h/", **options})
    with pytest.raises(TemplateError, match="surrogate"):
        listener.render("e", "bad \udcff decode")


# -- nothing but EventiscErrors out of deliver ---------------------------------------------------


class _FailingAuth:
    """A requests auth object that fails on a value it was given."""

    def __call__(self, request):
        raise OverflowError("timestamp out of range for platform time_t")


def test_a_non_driver_exception_inside_requests_is_a_delivery_error(receiver):
    listener = HttpListener("e", receiver.url, requests_kwargs={"auth": _FailingAuth()})
    with pytest.raises(DeliveryError) as info:
        listener.notify("e", {})
    assert type(info.value) is DeliveryError and not info.value.transient
    assert "unexpected OverflowError" in str(info.value)
    assert isinstance(info.value.__cause__, OverflowError)


@pytest.mark.parametrize(
    "url", ["http://h:abc/", "http://h/a\nb", "ftp://h/", "h/x", "http://[::1/", "http://a b/"]
)
def test_a_stored_notification_with_a_url_that_cannot_be_sent_is_a_delivery_error(url):
    # A notification spooled by another version, or built by hand, is not checked by render.
    listener = HttpListener("e", "http://127.0.0.1:9/", timeout=1)
    notification = Notification(
        listener.name, "http", "e", {"method": "POST", "url": url, "headers": {}, "body": None}
    )
    with pytest.raises(DeliveryError):
        listener.deliver(notification)


def test_translate_error_turns_any_exception_into_a_delivery_error():
    err = translate_error(OverflowError("too big"), "POST http://h/")
    assert type(err) is DeliveryError
    assert str(err) == (
        "POST http://h/: unexpected OverflowError while sending (check the listener's "
        "settings): too big"
    )
