"""The http kind and redirects, against real HTTP servers (tests/receiver.py): what is
followed, what is kept (method, body) and what stays behind (credentials), and the bounds."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest

import eventisc
from eventisc import (
    ConfigError,
    DeliveryError,
    DeliveryTimeout,
    HTTPStatusError,
)
from eventisc.listeners.http import MAX_REDIRECTS, HttpListener

from .receiver import Receiver, Response
from .support import failure, http

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")


@pytest.fixture
def other() -> Iterator[Receiver]:
    """A second receiver: another origin (another port) than the `receiver` fixture."""
    r = Receiver()
    yield r
    r.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- not followed --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_post_is_not_redirected_by_default_and_the_failure_names_the_location(receiver, status):
    # Given a receiver that answers the POST with a redirect (requests would send a body-less
    # GET there for 301-303, and count its 2xx as delivered)
    receiver.respond(Response(status, b"moved", {"Location": "/new"}))
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/old", data={"n": 1})], raise_errors=True
    )
    # When the event is triggered
    exc = failure(app, "e")
    # Then it is a refusal naming where the receiver points, and nothing else was sent
    assert isinstance(exc, HTTPStatusError)
    assert exc.status == status and not exc.transient and exc.body == "moved"
    assert f"POST {receiver.url}/old: HTTP {status}" in str(exc)
    assert f"redirecting to '{receiver.url}/new'" in str(exc)
    assert "follow_redirects: true" in str(exc)
    assert [(r.method, r.path) for r in receiver.requests] == [("POST", "/old")]


def test_an_unfollowed_redirect_is_not_retried(receiver):
    receiver.respond(*[Response(307, b"", {"Location": "/new"})] * 3)
    app = eventisc.create_app(
        listeners=[http(receiver.url, retry={"max_attempts": 3, "backoff_factor": 0.01})],
        raise_errors=True,
    )
    assert isinstance(failure(app, "e"), HTTPStatusError)
    assert len(receiver.requests) == 1


def test_a_redirect_listed_in_success_status_is_delivered_not_followed(receiver):
    receiver.respond(Response(302, b"", {"Location": "/new"}))
    listener = HttpListener("e", receiver.url, method="get", success_status=["2xx", 302])
    assert listener.deliver(listener.render("e", {})) == "HTTP 302"
    assert [r.path for r in receiver.requests] == ["/"]


def test_follow_redirects_false_stops_a_get_too(receiver):
    receiver.respond(Response(301, b"", {"Location": "/new"}))
    listener = HttpListener("e", receiver.url + "/old", method="get", follow_redirects=False)
    with pytest.raises(HTTPStatusError, match="HTTP 301 Moved Permanently, redirecting to"):
        listener.notify("e", {})
    assert len(receiver.requests) == 1


# -- followed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_follow_redirects_keeps_the_method_and_the_body(receiver, status):
    receiver.respond(Response(status, b"", {"Location": "/new?x=1"}))
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/old", method="put", data={"n": 7}, follow_redirects=True)],
        raise_errors=True,
    )
    assert app.trigger("e") == 1
    old, new = receiver.wait_for(2)
    assert (new.method, new.path, new.query) == ("PUT", "/new", {"x": ["1"]})
    assert new.body == old.body == b'{"n":7}'
    assert new.headers["Content-Type"] == "application/json; charset=utf-8"


def test_requests_kwargs_allow_redirects_is_another_name_for_follow_redirects(receiver):
    receiver.respond(Response(302, b"", {"Location": "/new"}))
    app = eventisc.create_app(
        listeners=[http(receiver.url, data={"n": 1}, requests_kwargs={"allow_redirects": True})],
        raise_errors=True,
    )
    assert app.trigger("e") == 1
    assert [(r.method, r.path, r.body) for r in receiver.wait_for(2)] == [
        ("POST", "/", b'{"n":1}'),
        ("POST", "/new", b'{"n":1}'),
    ]


def test_follow_redirects_given_twice_is_a_config_error():
    listener = http("http://h/", follow_redirects=True, requests_kwargs={"allow_redirects": True})
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[listener])
    assert info.value.path == "listeners[0].requests_kwargs.allow_redirects"
    assert "once" in info.value.message and "follow_redirects" in info.value.message


def test_a_post_answered_303_is_not_sent_again_even_with_follow_redirects(receiver):
    # 303 See Other points at a result to fetch: sending the POST there would repeat it.
    receiver.respond(Response(303, b"", {"Location": "/result/1"}))
    listener = HttpListener("e", receiver.url, data={"n": 1}, follow_redirects=True)
    with pytest.raises(HTTPStatusError) as info:
        listener.notify("e", {})
    assert info.value.status == 303
    assert "add 303 to success_status" in str(info.value)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_get_follows_redirects_by_default(receiver, status):
    receiver.respond(Response(status, b"", {"Location": "/new"}))
    listener = HttpListener("e", receiver.url + "/old?id={event_data}", method="get")
    assert listener.notify("e", 5) is True
    assert [(r.method, r.path) for r in receiver.wait_for(2)] == [("GET", "/old"), ("GET", "/new")]


def test_a_head_follows_redirects_by_default(receiver):
    receiver.respond(Response(302, b"", {"Location": "/new"}))
    listener = HttpListener("e", receiver.url + "/old", method="head")
    assert listener.notify("e", {}) is True
    assert [(r.method, r.path) for r in receiver.wait_for(2)] == [
        ("HEAD", "/old"),
        ("HEAD", "/new"),
    ]


def test_credentials_go_to_the_same_origin_only(receiver, other):
    # Given a listener with every kind of credential: URL userinfo, auth, a header, a cookie
    url = receiver.url.replace("http://", "http://ann:url-secret@") + "/a"
    listener = HttpListener(
        "e",
        url,
        data={"n": 1},
        follow_redirects=True,
        headers={"X-Trace": "t1"},
        requests_kwargs={"cookies": {"sid": "c1"}},
    )
    with_auth = HttpListener(
        "e",
        receiver.url + "/a",
        data={"n": 1},
        follow_redirects=True,
        headers={"Authorization": "Bearer header-secret"},
    )
    with_tuple = HttpListener(
        "e",
        receiver.url + "/a",
        follow_redirects=True,
        requests_kwargs={"auth": ["bob", "tuple-secret"]},
    )
    for one in (listener, with_auth, with_tuple):
        # When the receiver redirects within its origin, then to another origin
        receiver.respond(
            Response(307, b"", {"Location": "/b"}),
            Response(308, b"", {"Location": other.url + "/c"}),
        )
        assert one.notify("e", {}) is True
    # Then the credentials reached the first origin on both hops, and never the other one
    first = [r.headers for r in receiver.wait_for(6)]
    assert [h.get("Authorization") for h in first] == [
        basic("ann", "url-secret"),
        basic("ann", "url-secret"),
        "Bearer header-secret",
        "Bearer header-secret",
        basic("bob", "tuple-secret"),
        basic("bob", "tuple-secret"),
    ]
    assert first[0]["Cookie"] == first[1]["Cookie"] == "sid=c1"
    elsewhere = other.wait_for(3)
    assert [r.path for r in elsewhere] == ["/c"] * 3
    for request in elsewhere:
        assert "Authorization" not in request.headers and "Cookie" not in request.headers
    # What is not a credential went on: the body and the other headers.
    assert elsewhere[0].body == b'{"n":1}' and elsewhere[0].headers["X-Trace"] == "t1"


# -- bounds --------------------------------------------------------------------------------------


def test_a_redirect_loop_stops_after_max_redirects_naming_the_last_location(receiver):
    receiver.default = Response(302, b"", {"Location": "/loop"})
    listener = HttpListener("e", receiver.url + "/start", method="get")
    with pytest.raises(DeliveryError) as info:
        listener.notify("e", {})
    assert type(info.value) is DeliveryError and not info.value.transient
    assert f"more than {MAX_REDIRECTS} redirects" in str(info.value)
    assert "'/loop'" in str(info.value)
    assert len(receiver.requests) == MAX_REDIRECTS + 1  # requests' own limit is 30


def test_a_redirect_to_another_scheme_is_a_delivery_error_naming_it(receiver):
    receiver.respond(Response(302, b"", {"Location": "ftp://files.example.com/x"}))
    listener = HttpListener("e", receiver.url, method="get")
    with pytest.raises(DeliveryError) as info:
        listener.notify("e", {})
    assert type(info.value) is DeliveryError
    assert "redirects to 'ftp://files.example.com/x'" in str(info.value)


def test_a_redirect_body_is_read_within_max_response_bytes(receiver):
    # Given a redirect with a 64 MiB body (requests reads a redirect's body to its end)
    chunk = b"x" * 65536
    receiver.respond(Response(302, chunk, {"Location": "/new"}, repeat=1024))
    listener = HttpListener("e", receiver.url, method="get", max_response_bytes=65536)
    # When it is followed
    start = time.monotonic()
    assert listener.notify("e", {}) is True
    # Then the rest of that body was left unread: its connection was dropped
    assert time.monotonic() - start < 5
    assert max(receiver.wait_sent(2)) < 1024 * len(chunk) // 2


def test_the_deadline_covers_the_whole_chain(receiver):
    # Each hop alone is within the read timeout; together they pass the deadline.
    receiver.respond(
        *[Response(302, b"", {"Location": f"/{i}"}, delay=0.4) for i in range(4)],
    )
    listener = HttpListener("e", receiver.url, method="get", timeout=5, deadline=1)
    start = time.monotonic()
    with pytest.raises(DeliveryTimeout, match="did not finish within 1 s"):
        listener.notify("e", {})
    assert time.monotonic() - start < 1 + 2
