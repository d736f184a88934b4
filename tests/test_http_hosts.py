"""The http kind and hosts taken from event data (eventisc/listeners/http/hosts.py): internal
addresses refused before connecting unless `allow_hosts` lists them, urls written in the config
trusted, against a real HTTP server on 127.0.0.1 (tests/receiver.py)."""

from __future__ import annotations

import socket

import pytest

import eventisc
from eventisc import ConfigError, ConnectError, DeliveryError
from eventisc.listeners.http.hosts import HostGuard, host_is_templated

from .receiver import Response
from .support import failure, http

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")

CALLBACK = "{event_data['callback']}"
FAST_RETRY = {"max_attempts": 3, "backoff_factor": 0.01, "max_backoff": 0.01, "jitter": 0}


def callback_app(**options):
    return eventisc.create_app(listeners=[http(CALLBACK, **options)], raise_errors=True)


def test_a_templated_host_on_loopback_is_refused_naming_the_host(receiver):
    exc = failure(callback_app(), "e", {"callback": receiver.url + "/hook"})
    assert type(exc) is DeliveryError and not exc.transient
    assert "host '127.0.0.1' is a loopback address" in str(exc) and "allow_hosts" in str(exc)
    assert receiver.requests == []


@pytest.mark.parametrize("allowed", ["127.0.0.1", "127.0.0.0/8"])
def test_allow_hosts_lets_a_listed_address_or_network_through(receiver, allowed):
    app = callback_app(allow_hosts=[allowed])
    app.trigger("e", {"callback": receiver.url + "/hook"})
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_url_written_in_the_config_is_trusted(receiver):
    eventisc.create_app(listeners=[http(receiver.url + "/x")], raise_errors=True).trigger("e")
    assert [r.path for r in receiver.requests] == ["/x"]


def test_a_templated_path_keeps_the_host_written_in_the_config(receiver):
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/{event_data['path']}")], raise_errors=True
    )
    app.trigger("e", {"path": "p"})
    assert [r.path for r in receiver.requests] == ["/p"]


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://10.0.0.1/x", "private"),
        ("http://192.168.1.1:8080/x", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("http://[::1]:9/x", "loopback"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://[fd00::1]/x", "private"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://0.0.0.0:9/x", "unspecified"),
        ("http://224.0.0.1/x", "multicast"),
        ("http://240.0.0.1/x", "private"),  # reserved, which Python counts as private too
        ("http://100.64.0.1/x", "shared"),
    ],
)
def test_internal_addresses_are_refused_before_connecting(monkeypatch, url, reason):
    def no_connection(*args, **kwargs):
        raise AssertionError("nothing may be sent")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    exc = failure(callback_app(), "e", {"callback": url})
    assert type(exc) is DeliveryError
    assert f"is a {reason}" in str(exc)


def test_every_address_a_name_resolves_to_is_checked(monkeypatch):
    # Given a name that resolves to a public address and to a private one
    def getaddrinfo(host, port, *args, **kwargs):
        assert host == "hooks.example.com"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    # Then the request is refused, naming the name and the private address
    exc = failure(callback_app(), "e", {"callback": "https://hooks.example.com/h"})
    assert "'hooks.example.com' resolves to 10.1.2.3, a private address" in str(exc)


def test_a_listed_host_name_is_not_resolved(monkeypatch):
    guard = HostGuard.from_option(["Hooks.Internal."])
    monkeypatch.setattr(socket, "getaddrinfo", None)  # would fail if called
    guard.check("http://hooks.internal:8080/x", "POST http://hooks.internal:8080/x")


def test_a_host_that_does_not_resolve_is_a_connect_error(monkeypatch):
    def getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(ConnectError, match="cannot resolve host 'nowhere.example'"):
        HostGuard.from_option(None).check("http://nowhere.example/", "POST http://nowhere.example/")


@pytest.mark.parametrize(
    "entries, index",
    [(["127.0.0.1", "10.0.0.1/8"], 1), (["not a host"], 0), ([""], 0), (["::1/200"], 0)],
)
def test_a_bad_allow_hosts_entry_is_a_config_error_with_its_path(entries, index):
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[http(CALLBACK, allow_hosts=entries)])
    assert info.value.path == f"listeners[0].allow_hosts[{index}]"


def test_a_refused_host_is_not_retried(receiver):
    app = eventisc.create_app(
        listeners=[http(CALLBACK, name="cb")], delivery="background", retry=FAST_RETRY
    )
    try:
        report = app.dispatch("e", {"callback": receiver.url})
        assert report.wait(10)
        delivery = report.deliveries[0]
        assert type(delivery.error) is DeliveryError and delivery.attempts == 1
        assert (app.stats()["listeners"]["cb"]["retried"], len(receiver.requests)) == (0, 0)
    finally:
        app.close()


def test_a_redirect_of_a_templated_url_is_checked_too(receiver):
    # Given an allowed receiver that redirects to a private address
    receiver.respond(Response(307, b"", {"Location": "http://10.0.0.1/internal"}))
    app = callback_app(allow_hosts=["127.0.0.1"], follow_redirects=True)
    # Then the redirect is not followed: it is refused as the first hop would be
    exc = failure(app, "e", {"callback": receiver.url + "/h"})
    assert type(exc) is DeliveryError
    assert "redirected to http://10.0.0.1/internal" in str(exc) and "a private" in str(exc)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "url, templated",
    [
        ("http://h/x", False),
        ("http://h/{event_name}", False),
        ("http://h:8080?q={event_name}", False),
        ("{event_data['callback']}", True),
        ("http://{event_data['host']}/x", True),
        ("http://h{event_data['suffix']}/x", True),
        ("http://h:{event_data['port']}/x", True),
        ("{event_data['scheme']}://h/x", True),
    ],
)
def test_host_is_templated(url, templated):
    assert host_is_templated(url) is templated


def test_an_allowed_network_covers_its_ipv4_mapped_addresses(monkeypatch):
    guard = HostGuard.from_option(["127.0.0.0/8"])
    guard.check("http://[::ffff:127.0.0.1]:9/", "POST http://[::ffff:127.0.0.1]:9/")
