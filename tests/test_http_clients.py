"""The two clients of the ``http`` kind: urllib3 (the usual path) and requests (taken for the
options only requests honours) send the same bytes; the choice is made once, at load."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest
import requests

from eventisc import ConfigError
from eventisc.listeners.http import HttpListener
from eventisc.listeners.http import listener as http_listener
from eventisc.notification import Notification

from .receiver import Request

URL_PATH = "/hooks/{event_name}/ü x?static=1"

#: Listeners of every body a listener sends: JSON, form, none, and CloudEvents (binary,
#: structured), with query parameters, headers, credentials and a path needing encoding.
CASES: dict[str, dict[str, Any]] = {
    "json": {"data": {"user": "{event_data[user]}", "n": 3, "when": None, "tags": ["a", "b"]}},
    "form": {
        "request_format": "form",
        "data": {"user": "{event_data[user]}", "flag": True, "many": [1, "two"], "none": None},
    },
    "no body (POST)": {},
    "no body (GET)": {"method": "get", "query_kwargs": {"q": "{event_data[user]}"}},
    "no body (DELETE)": {"method": "delete"},
    "raw text as JSON": {"data": "{event_data[user]} said “hi”", "method": "put"},
    "headers and basic auth": {
        "data": {"a": 1},
        "headers": {"X-Trace": "{event_data[user]}", "accept": "application/json"},
        "requests_kwargs": {
            "auth": ["ann", "sécret"],
            "headers": {"X-Static": "1", "accept-encoding": "identity"},
        },
    },
    "cloudevents binary": {"data": {"a": 1}, "format": "cloudevents", "source": "/tests"},
    "cloudevents structured": {
        "request_format": "form",
        "data": {"a": 1},
        "format": "cloudevents",
        "cloudevents_mode": "structured",
        "source": "/tests",
    },
}


def _listener(
    monkeypatch: pytest.MonkeyPatch, receiver: Any, client: str, options: dict[str, Any]
) -> HttpListener:
    with monkeypatch.context() as patch:
        if client == "requests":
            patch.setattr(http_listener, "needs_requests", lambda options: "every option")
        listener = HttpListener("e", receiver.url + URL_PATH, **options)
    assert listener._client.client == client
    return listener


def _as_received(request: Request) -> tuple[Any, ...]:
    headers = {k.lower(): v for k, v in request.headers.items()}
    agent = headers.pop("user-agent")
    assert agent.startswith("eventisc/")
    return request.method, request.path, request.query, headers, request.body


@pytest.mark.parametrize("case", CASES)
def test_both_clients_send_the_same_request(receiver, monkeypatch, case):
    # Given one notification, rendered once
    options = CASES[case]
    listeners = {c: _listener(monkeypatch, receiver, c, options) for c in ("requests", "urllib3")}
    notification: Notification = listeners["urllib3"].render("e", {"user": "Zoë & co"})
    # When each client sends it
    for listener in listeners.values():
        assert listener.deliver(notification) == "HTTP 200"
        listener.close()
    # Then the receiver got the same method, target, headers and body bytes
    old, new = (_as_received(r) for r in receiver.requests)
    assert new == old
    assert new[1] == "/hooks/e/%C3%BC%20x"


def test_a_plain_listener_sends_through_urllib3_and_needs_no_requests():
    # Given a Python where requests cannot be imported
    code = (
        "import sys\n"
        "sys.modules['requests'] = None\n"
        "import eventisc\n"
        "from tests.receiver import Receiver\n"
        "r = Receiver()\n"
        "app = eventisc.create_app(listeners=[{'kind': 'http', 'event_name': 'e', "
        "'url': r.url + '/x', 'requests_kwargs': {'auth': ['a', 'b'], 'verify': True}}])\n"
        "assert app.trigger('e', {'a': 1}) == 1\n"
        "assert r.requests[0].headers['Authorization'] == 'Basic YTpi'\n"
        "try:\n"
        "    eventisc.create_app(listeners=[{'kind': 'http', 'event_name': 'e', "
        "'url': r.url, 'requests_kwargs': {'cookies': {'a': 'b'}}}])\n"
        "except eventisc.ConfigError as exc:\n"
        "    print(exc)\n"
        "r.close()\n"
    )
    # When a plain listener sends, and one with a requests-only option is loaded
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # Then the first is delivered, the second names the extra to install
    assert done.returncode == 0, done.stderr
    assert "listeners[0].requests_kwargs" in done.stdout
    assert "pip install 'eventisc[http]'" in done.stdout
    assert "`cookies`" in done.stdout


def _hook(response: Any, **kwargs: Any) -> None:
    response.headers["X-Seen"] = "1"


@pytest.mark.parametrize(
    "requests_kwargs, reason",
    [
        ({"cookies": {"session": "abc"}}, "`cookies`"),
        ({"hooks": {"response": _hook}}, "`hooks`"),
        ({"adapters": {"http://": requests.adapters.HTTPAdapter()}}, "`adapters`"),
        ({"auth": lambda request: request}, "an `auth` object"),
    ],
    ids=["cookies", "hooks", "adapters", "auth object"],
)
def test_a_requests_only_option_sends_through_requests(receiver, caplog, requests_kwargs, reason):
    caplog.set_level(logging.DEBUG, logger="eventisc.listeners.http.listener")
    listener = HttpListener("e", receiver.url + "/x", requests_kwargs=requests_kwargs)
    assert listener._client.client == "requests"
    expected = f"listener {listener.name} sends through requests (it is given {reason})"
    assert listener.notify("e", {}) is True
    assert listener.notify("e", {}) is True
    chosen = [r for r in caplog.records if "sends through" in r.getMessage()]
    assert [r.getMessage() for r in chosen] == [expected]  # decided once, at load
    assert chosen[0].levelno == logging.DEBUG


def test_a_hook_sees_every_response(receiver):
    seen: list[int] = []
    listener = HttpListener(
        "e",
        receiver.url + "/x",
        requests_kwargs={"hooks": {"response": [lambda r, **kw: seen.append(r.status_code)]}},
    )
    listener.notify("e", {})
    assert seen == [200]


def test_cookies_reach_the_receiver_through_requests(receiver):
    listener = HttpListener("e", receiver.url + "/x", requests_kwargs={"cookies": {"s": "abc"}})
    listener.notify("e", {})
    assert receiver.requests[0].headers["Cookie"] == "s=abc"


def test_options_urllib3_honours_keep_the_urllib3_client(receiver, tmp_path):
    listener = HttpListener(
        "e",
        receiver.url + "/x",
        requests_kwargs={"auth": ["a", "b"], "verify": False, "proxies": {"no_proxy": "*"}},
        timeout=[1, 2],
    )
    assert listener._client.client == "urllib3"


def test_a_mounted_adapter_sends_the_requests(receiver):
    sent: list[str] = []

    class Recording(requests.adapters.HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            sent.append(request.url)
            return super().send(request, **kwargs)

    url = receiver.url + "/x"
    listener = HttpListener("e", url, requests_kwargs={"adapters": {"http://": Recording()}})
    assert listener.notify("e", {}) is True
    assert sent == [url]
    assert len(receiver.requests) == 1


def test_something_that_is_no_adapter_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        HttpListener("e", "http://h/x", requests_kwargs={"adapters": {"http://": 1}})
    assert info.value.path == "requests_kwargs.adapters.http://"
