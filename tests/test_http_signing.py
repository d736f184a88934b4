"""Signed HTTP requests (the http kind's ``signing`` option) and :func:`eventisc.webhooks.verify`,
against a real HTTP server (tests/receiver.py), checked with the Standard Webhooks and Svix
libraries as well as our own verify."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks.webhooks
import svix.webhooks

import eventisc
from eventisc import ConfigError, SignatureError
from eventisc.listeners.http import HttpListener
from eventisc.webhooks import Signer, parse_key, verify

from .receiver import Receiver, Request, Response
from .support import http, run_cli

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")

SECRET = "whsec_" + base64.b64encode(b"first secret key, 32 bytes long!").decode()
OTHER = "whsec_" + base64.b64encode(b"the second secret, while rotated").decode()
FAST_RETRY = {"max_attempts": 3, "backoff_factor": 0, "jitter": 0}


def header(request: Request, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name), None)


def signed_app(receiver: Receiver, signing: dict[str, Any], **options: Any) -> eventisc.App:
    return eventisc.create_app(
        listeners=[http(receiver.url, data="{event_data}", signing=signing)],
        retry=FAST_RETRY,
        **options,
    )


def test_a_signed_request_verifies_with_every_library(receiver: Receiver) -> None:
    app = signed_app(receiver, {"secret": SECRET})
    (delivery,) = app.dispatch("e", {"user": "ann", "é": 1})
    assert delivery.status == "delivered"
    (request,) = receiver.requests
    assert header(request, "webhook-id") == delivery.notification.id
    assert abs(int(header(request, "webhook-timestamp") or 0) - time.time()) < 5
    assert (header(request, "webhook-signature") or "").startswith("v1,")
    expected = {"user": "ann", "é": 1}
    assert standardwebhooks.webhooks.Webhook(SECRET).verify(request.body, request.headers) == (
        expected
    )
    svix.webhooks.Webhook(SECRET).verify(request.body, request.headers)  # raises if wrong
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(OTHER).verify(request.body, request.headers)
    assert verify(SECRET, request.headers, request.body) == expected
    app.close()


def test_every_attempt_is_signed_afresh_under_the_same_id(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a receiver that fails twice, and a clock that moves a second per attempt
    receiver.script.extend([Response(503), Response(503), Response(200)])
    ticks = itertools.count(2_000_000_000)
    clock = types.SimpleNamespace(time=lambda: float(next(ticks)))
    monkeypatch.setattr("eventisc.webhooks.time", clock)
    app = signed_app(receiver, {"secret": SECRET})
    # When one event is triggered
    (delivery,) = app.dispatch("e", {"n": 1})
    monkeypatch.undo()
    # Then three attempts carry one id, each its own timestamp and signature
    assert delivery.status == "delivered" and delivery.attempts == 3
    requests = receiver.requests
    assert [header(r, "webhook-id") for r in requests] == [delivery.notification.id] * 3
    stamps = [header(r, "webhook-timestamp") for r in requests]
    signatures = [header(r, "webhook-signature") for r in requests]
    assert len(set(stamps)) == 3 and len(set(signatures)) == 3
    for request in requests:
        assert verify(SECRET, request.headers, request.body, tolerance=10**10) == {"n": 1}
    app.close()


def test_two_secrets_send_two_signatures(receiver: Receiver) -> None:
    app = signed_app(receiver, {"secrets": [SECRET, OTHER]})
    app.dispatch("e", [1, 2])
    (request,) = receiver.requests
    signatures = (header(request, "webhook-signature") or "").split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (SECRET, OTHER):
        assert standardwebhooks.webhooks.Webhook(secret).verify(request.body, request.headers)
        svix.webhooks.Webhook(secret).verify(request.body, request.headers)
        assert verify(secret, request.headers, request.body) == [1, 2]
    app.close()


def test_a_request_without_a_body_and_a_form_body_are_signed(receiver: Receiver) -> None:
    app = eventisc.create_app(
        listeners=[
            http(receiver.url, signing={"secret": SECRET}, name="empty"),
            http(
                receiver.url, data={"a": "b c"}, request_format="form", signing={"secret": SECRET}
            ),
        ]
    )
    app.dispatch("e", {})
    bodies = sorted(verify(SECRET, r.headers, r.body) for r in receiver.requests)
    assert bodies == ["", "a=b+c"]
    app.close()


def test_verify_rejects_what_does_not_check_out() -> None:
    body = b'{"n": 1}'
    headers = Signer.from_option({"secret": SECRET}).headers("msg_1", body)
    assert verify([OTHER, SECRET], {k.upper(): v for k, v in headers.items()}, body.decode()) == {
        "n": 1
    }
    with pytest.raises(SignatureError, match="no signature"):
        verify(SECRET, headers, b'{"n": 2}')
    with pytest.raises(SignatureError, match="no signature"):
        verify(OTHER, headers, body)
    with pytest.raises(SignatureError, match="no signature"):
        verify(SECRET, {**headers, "webhook-id": "msg_2"}, body)
    for name in headers:
        with pytest.raises(SignatureError, match=f"no {name} header"):
            verify(SECRET, {k: v for k, v in headers.items() if k != name}, body)
    old = Signer.from_option({"secret": SECRET}).headers("msg_1", body, int(time.time()) - 301)
    with pytest.raises(SignatureError, match="too old"):
        verify(SECRET, old, body)
    assert verify(SECRET, old, body, tolerance=600) == {"n": 1}
    future = Signer.from_option({"secret": SECRET}).headers("msg_1", body, int(time.time()) + 900)
    with pytest.raises(SignatureError, match="future"):
        verify(SECRET, future, body)
    with pytest.raises(SignatureError, match="not a number"):
        verify(SECRET, {**headers, "webhook-timestamp": "soon"}, body)
    assert isinstance(SignatureError("x"), eventisc.EventiscError)


@pytest.mark.parametrize(
    ("signing", "path", "message"),
    [
        ({"secret": "abc"}, "signing.secret", "starts with `whsec_`"),
        ({"secret": 7}, "signing.secret", "is not of type 'string'"),
        ({"secrets": "whsec_AA=="}, "signing.secrets", "is not of type 'array'"),
        ({"secret": "whpk_" + "A" * 43 + "="}, "signing.secret", "only verifies"),
        ({"secret": "whsk_AAAA"}, "signing.secret", "32 bytes (the seed) or 64"),
        ({"secret": "whsec_not*base64"}, "signing.secret", "not valid base64"),
        ({"secret": "whsec_"}, "signing.secret", "empty"),
        ({"secrets": [SECRET, "whsec_%%"]}, "signing.secrets[1]", "not valid base64"),
        ({"secrets": []}, "signing.secrets", "should be non-empty"),
        ({"secret": SECRET, "secrets": [OTHER]}, "signing", "either `secret` or `secrets`"),
        ({}, "signing", "either `secret` or `secrets`"),
        ({"key": SECRET}, "signing.key", "unknown option 'key'"),
    ],
)
def test_bad_signing_options_fail_at_load_with_their_path(
    signing: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(
            listeners=[http("http://h.example/", name="a"), http("http://x/", signing=signing)]
        )
    assert info.value.path == f"listeners[1].{path}"
    assert message in info.value.message
    assert SECRET[6:] not in str(info.value) and "%%" not in str(info.value)


def test_secrets_are_never_shown(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listener = HttpListener("e", receiver.url, signing={"secrets": [SECRET, OTHER]})
    assert SECRET not in repr(listener._signer) and SECRET not in repr(listener)
    config = tmp_path / "events.json"
    config.write_text(json.dumps({"listeners": [http(receiver.url, signing={"secret": SECRET})]}))
    for args in (("check", str(config)), ("trigger", str(config), "e", "--dry-run")):
        result = run_cli(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert SECRET[6:] not in result.stdout + result.stderr
    app = signed_app(receiver, {"secret": SECRET}, dry_run=True)
    with caplog.at_level(logging.DEBUG, logger="eventisc"):
        (delivery,) = app.dispatch("e", {"n": 1})
    assert receiver.requests == []
    (shown,) = [r.getMessage() for r in caplog.records if "would send" in r.getMessage()]
    assert f"'webhook-id': '{delivery.notification.id}'" in shown
    assert "'webhook-signature': '***'" in shown
    assert SECRET[6:] not in caplog.text
    app.close()


# -- ed25519 (v1a) ----------------------------------------------------------------------------


def ed25519_keys() -> tuple[Any, str, str]:
    """A new ed25519 private key, its ``whsk_`` seed and its ``whpk_`` public key."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes_raw()
    return (
        private,
        "whsk_" + base64.b64encode(seed).decode(),
        "whpk_" + base64.b64encode(public).decode(),
    )


def test_an_ed25519_key_signs_v1a(receiver: Receiver) -> None:
    private, signing_key, public_key = ed25519_keys()
    seed_and_public = (
        "whsk_"
        + base64.b64encode(
            base64.b64decode(signing_key[5:]) + base64.b64decode(public_key[5:])
        ).decode()
    )
    app = signed_app(receiver, {"secrets": [seed_and_public, SECRET]})
    (delivery,) = app.dispatch("e", {"n": 1})
    assert delivery.status == "delivered"
    (request,) = receiver.requests
    v1a, v1 = (header(request, "webhook-signature") or "").split(" ")
    assert v1a.startswith("v1a,") and v1.startswith("v1,")
    # Checked with cryptography itself, then with our verify and the public key alone
    content = f"{delivery.notification.id}.{header(request, 'webhook-timestamp')}.".encode()
    private.public_key().verify(base64.b64decode(v1a[4:]), content + request.body)
    assert verify(public_key, request.headers, request.body) == {"n": 1}
    assert verify(signing_key, request.headers, request.body) == {"n": 1}
    assert verify(SECRET, request.headers, request.body) == {"n": 1}
    _, _, stranger = ed25519_keys()
    with pytest.raises(SignatureError):
        verify(stranger, request.headers, request.body)
    with pytest.raises(SignatureError):
        verify(public_key, request.headers, request.body + b" ")
    app.close()


def test_a_mismatched_seed_and_public_key_is_refused() -> None:
    _, signing_key, _ = ed25519_keys()
    _, _, other_public = ed25519_keys()
    mixed = (
        "whsk_"
        + base64.b64encode(
            base64.b64decode(signing_key[5:]) + base64.b64decode(other_public[5:])
        ).decode()
    )
    with pytest.raises(ConfigError, match="public half does not match") as info:
        eventisc.create_app(listeners=[http("http://x/", signing={"secret": mixed})])
    assert info.value.path == "listeners[0].signing.secret"
    assert signing_key[5:] not in str(info.value)
    assert "whsk_ key" in repr(parse_key(signing_key))


def test_without_cryptography_an_ed25519_key_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = "whsk_" + base64.b64encode(b"s" * 32).decode()
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric", None)
    with pytest.raises(ConfigError, match=r"pip install 'eventisc\[ed25519\]'") as info:
        eventisc.create_app(listeners=[http("http://x/", signing={"secrets": [SECRET, seed]})])
    assert info.value.path == "listeners[0].signing.secrets[1]"
    # HMAC secrets need nothing beyond the standard library
    assert eventisc.create_app(listeners=[http("http://x/", signing={"secret": SECRET})])
