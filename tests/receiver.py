"""A real HTTP server on 127.0.0.1 for tests: records requests, answers as scripted."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int]
    received: float = 0.0  # time.monotonic() when it arrived

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


@dataclass
class Response:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: The body is sent this many times over: a large body without holding it in memory.
    repeat: int = 1
    #: Seconds between the bytes of the body (the status and headers go at once).
    trickle: float = 0.0
    #: Informational answers, (status, headers), sent before the final one.
    informational: list[tuple[int, dict[str, str]]] = field(default_factory=list)


class Receiver:
    """Answers every request with the next scripted :class:`Response` (default 200 ``ok``).

    ``requests`` lists what arrived; ``connections`` the distinct client (host, port) pairs,
    so a test can check keep-alive; ``sent`` the body bytes written for each answer, once
    written or once the client stopped reading.
    """

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Request] = []
        self.sent: list[int] = []
        self.script: deque[Response] = deque()
        self.default = Response()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; Nagle would hold the second for ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                req = Request(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    dict(self.headers.items()),
                    body,
                    self.client_address,
                    time.monotonic(),
                )
                # Recorded on arrival, before answering: once a client has its answer, the
                # request is in `requests`.
                with receiver._cond:
                    resp = receiver.script.popleft() if receiver.script else receiver.default
                    receiver.requests.append(req)
                    receiver._cond.notify_all()
                if resp.delay:
                    time.sleep(resp.delay)
                for status, headers in resp.informational:
                    self.send_response_only(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.body) * resp.repeat))
                self.end_headers()
                if self.command != "HEAD":
                    self._write_body(resp)

            def _write_body(self, resp: Response) -> None:
                sent = 0
                try:
                    for _ in range(resp.repeat):
                        if not resp.trickle:
                            self.wfile.write(resp.body)
                            sent += len(resp.body)
                            continue
                        for i in range(len(resp.body)):
                            self.wfile.write(resp.body[i : i + 1])
                            sent += 1
                            time.sleep(resp.trickle)
                finally:
                    with receiver._cond:
                        receiver.sent.append(sent)
                        receiver._cond.notify_all()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that timed out before a delayed answer: expected, not news.
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def connections(self) -> set[tuple[str, int]]:
        return {r.client for r in self.requests}

    def respond(self, *responses: Response) -> None:
        with self._cond:
            self.script.extend(responses)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            return list(self.requests)

    def wait_sent(self, count: int, timeout: float = 10.0) -> list[int]:
        """Wait until ``count`` answers have been written (or abandoned by their client)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.sent) >= count, timeout):
                raise AssertionError(f"expected {count} answers written, got {len(self.sent)}")
            return list(self.sent)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
