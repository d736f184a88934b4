"""A threaded HTTP/1.1 keep-alive receiver, run in its own process by the HTTP benchmarks.

    python -m benchmarks.http_server [--delay SECONDS]

Prints ``PORT <n>`` once it listens on 127.0.0.1, answers every POST with ``200 ok`` after
``--delay`` seconds, and ``GET /count`` with the number of POSTs received so far (so a
benchmark can check that everything arrived). It exits when its standard input closes, so it
never outlives the benchmark that started it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive HTTP/1.1 handler that logs nothing; ``_answer`` sends a 200 with a body."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; Nagle would hold the second for ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run(handler: type[BaseHTTPRequestHandler]) -> None:
    """Serve ``handler`` on a free port of 127.0.0.1: print ``PORT <n>``, then serve until
    standard input closes (the parent closed it, or died)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
    server.daemon_threads = True
    # Before listen(): its backlog (5 by default) would drop the SYNs of clients opening
    # several connections at once, which then wait a second to try again.
    server.request_queue_size = 128
    server.server_bind()
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()


def serve(delay: float) -> None:
    counted = [0]
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with lock:
                counted[0] += 1
            if delay:
                time.sleep(delay)
            self._answer(b"ok")

        def do_GET(self) -> None:
            if self.path == "/count":
                with lock:
                    self._answer(str(counted[0]).encode())
            else:
                self._answer(b"ok")

    run(Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per POST")
    serve(parser.parse_args().delay)


if __name__ == "__main__":
    main()
