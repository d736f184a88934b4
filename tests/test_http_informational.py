"""Informational (1xx) answers before the final one, from real servers: the receiver of
tests/receiver.py, and a raw socket server writing the bytes itself."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from eventisc import HTTPStatusError
from eventisc.listeners.http import HttpListener

from .receiver import Response

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")

EARLY_HINTS = (103, {"Link": "</style.css>; rel=preload; as=style"})


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[bytes]]]:
    """A server on 127.0.0.1 answering each connection's request with the bytes a test puts
    in the list (one item per connection); yields (port, that list)."""
    answers: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += client.recv(65536)
                client.sendall(answers.pop(0))
                client.shutdown(socket.SHUT_WR)
                client.recv(1)  # until the client closes

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], answers
    server.close()


def test_an_early_hints_answer_is_skipped_and_the_final_status_counts(receiver):
    # Given a receiver that sends 103 Early Hints before its 200
    receiver.respond(Response(200, b"done", informational=[EARLY_HINTS]), Response(201))
    listener = HttpListener("e", receiver.url + "/hook", data={"n": 1})
    # Then the 200 decides, and the connection stays usable for the next event
    assert listener.deliver(listener.render("e", {})) == "HTTP 200"
    assert listener.deliver(listener.render("e", {})) == "HTTP 201"
    first, second = receiver.wait_for(2)
    assert first.client == second.client


def test_a_failure_after_informational_answers_reports_the_final_status(receiver):
    receiver.respond(
        Response(503, b"overloaded", informational=[EARLY_HINTS, (102, {}), EARLY_HINTS])
    )
    listener = HttpListener("e", receiver.url)
    with pytest.raises(HTTPStatusError) as info:
        listener.notify("e", {})
    assert (info.value.status, info.value.body) == (503, "overloaded")


def test_informational_answers_written_by_a_raw_server_are_skipped(raw_server):
    port, answers = raw_server
    answers.append(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 199 Whatever\r\nX-A: 1\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    )
    listener = HttpListener("e", f"http://127.0.0.1:{port}/")
    assert listener.deliver(listener.render("e", {})) == "HTTP 204"
