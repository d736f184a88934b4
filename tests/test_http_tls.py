"""The http kind over HTTPS with a private CA: ``requests_kwargs.verify``, ``cert`` (client
certificates) and ``REQUESTS_CA_BUNDLE``, against a real TLS server on 127.0.0.1 whose
certificates trustme makes."""

from __future__ import annotations

import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
import urllib3

import eventisc
from eventisc import ConfigError, DeliveryError

from .support import failure, http

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")


@dataclass
class Files:
    """A private CA's bundle, and a client certificate it signed."""

    ca: str
    client_cert: str
    client_key: str


class TLSReceiver:
    """An HTTPS server on 127.0.0.1 that records the bodies it receives and answers 200 ``ok``.

    The TLS handshake runs in the request's thread, so a client that fails it cannot hold up
    the server; failed handshakes are kept in ``refused``.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.bodies: list[bytes] = []
        self.refused: list[BaseException] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                self.request.settimeout(5)
                self.request.do_handshake()
                super().setup()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, address = self.socket.accept()
                wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return wrapped, address

            def handle_error(self, request: Any, client_address: Any) -> None:
                error = sys.exc_info()[1]
                if isinstance(error, OSError):  # ssl.SSLError, a reset: a refused client
                    receiver.refused.append(error)
                else:
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def files(ca: Any, tmp_path: Path) -> Files:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    client = ca.issue_cert("billing.example.org")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    return Files(str(bundle), str(cert), str(key))


def _server_context(ca: Any, require_client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    return context


@pytest.fixture
def server(ca: Any) -> Iterator[TLSReceiver]:
    r = TLSReceiver(_server_context(ca, require_client_cert=False))
    yield r
    r.close()


@pytest.fixture
def mtls_server(ca: Any) -> Iterator[TLSReceiver]:
    r = TLSReceiver(_server_context(ca, require_client_cert=True))
    yield r
    r.close()


@pytest.fixture
def no_ca_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _app(url: str, **options: Any) -> eventisc.App:
    return eventisc.create_app(listeners=[http(url, timeout=5, **options)], raise_errors=True)


# -- the server's certificate --------------------------------------------------------------------


def test_a_private_ca_bundle_in_verify_delivers(server, files, no_ca_env):
    app = _app(server.url, data={"n": 1}, requests_kwargs={"verify": files.ca})
    app.trigger("e")
    assert server.bodies == [b'{"n":1}']


def test_without_the_ca_the_certificate_check_fails_permanently_with_the_reason(server, no_ca_env):
    # Given a receiver whose certificate a private CA signed, and the system's CAs only
    exc = failure(_app(server.url), "e")
    # Then the failure says TLS failed and why, and is not retried (a retry fails the same way)
    assert type(exc) is DeliveryError and not exc.transient
    assert f"POST {server.url}: TLS failed" in str(exc)
    assert "certificate verify failed" in str(exc)
    assert server.bodies == []


def test_verify_false_delivers_without_checking_the_certificate(server, no_ca_env):
    # Insecure: anyone between the listener and the receiver can read and change the request.
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        _app(server.url, requests_kwargs={"verify": False}).trigger("e")
    assert len(server.bodies) == 1


def test_requests_ca_bundle_from_the_environment_is_used(server, files, no_ca_env):
    no_ca_env.setenv("REQUESTS_CA_BUNDLE", files.ca)
    _app(server.url).trigger("e")
    assert len(server.bodies) == 1


def test_verify_in_the_config_wins_over_requests_ca_bundle(server, files, no_ca_env, tmp_path):
    # Given REQUESTS_CA_BUNDLE naming another CA than the one that signed the receiver's
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    no_ca_env.setenv("REQUESTS_CA_BUNDLE", str(other))
    # Then the listener's own verify is the one used
    _app(server.url, requests_kwargs={"verify": files.ca}).trigger("e")
    assert len(server.bodies) == 1
    # and without it, the environment's bundle is, and fails
    exc = failure(_app(server.url), "e")
    assert "certificate verify failed" in str(exc)


# -- client certificates -------------------------------------------------------------------------


def test_a_client_certificate_is_accepted_by_a_server_that_requires_one(mtls_server, files):
    options = {"verify": files.ca, "cert": [files.client_cert, files.client_key]}
    _app(mtls_server.url, requests_kwargs=options).trigger("e")
    assert len(mtls_server.bodies) == 1
    assert mtls_server.refused == []


def test_without_a_client_certificate_the_server_refuses_the_listener(mtls_server, files):
    exc = failure(_app(mtls_server.url, requests_kwargs={"verify": files.ca}), "e")
    # With TLS 1.3 the client learns of the refusal after its side of the handshake: as the
    # server's "certificate required" alert, or (when the server closes first) an EOF. Either
    # way a permanent TLS failure, not a transient ConnectError.
    assert type(exc) is DeliveryError and not exc.transient
    assert f"POST {mtls_server.url}: TLS failed" in str(exc)
    assert mtls_server.bodies == []
    # (the server records its side of the refusal in its own thread, maybe a moment later)
    deadline = time.monotonic() + 5
    while not mtls_server.refused and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "did not return a certificate" in str(mtls_server.refused[0])


def test_a_client_certificate_and_key_in_one_file(mtls_server, files, tmp_path):
    both = tmp_path / "client-both.pem"
    both.write_text(Path(files.client_cert).read_text() + Path(files.client_key).read_text())
    _app(mtls_server.url, requests_kwargs={"verify": files.ca, "cert": str(both)}).trigger("e")
    assert len(mtls_server.bodies) == 1


# -- files checked at load -----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["cert", "key"])
def test_a_missing_client_certificate_or_key_file_fails_at_load(files, tmp_path, which):
    missing = str(tmp_path / "missing.pem")
    cert = [missing, files.client_key] if which == "cert" else [files.client_cert, missing]
    listener = http("https://h/", requests_kwargs={"cert": cert})
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[{"kind": "http", **listener}])
    assert info.value.path == "listeners[0].requests_kwargs.cert"
    assert missing in str(info.value)


def test_a_missing_single_client_certificate_file_fails_at_load(tmp_path):
    missing = str(tmp_path / "client.pem")
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[http("https://h/", requests_kwargs={"cert": missing})])
    assert info.value.path == "listeners[0].requests_kwargs.cert"
    assert f"no such client certificate file {missing!r}" in str(info.value)
