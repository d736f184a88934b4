"""A ``/metrics`` endpoint served from a daemon thread of the service itself.

In one process it serves the apps of that process (:data:`eventisc.prometheus.EXPORTED`) with
prometheus_client's default registry. With ``PROMETHEUS_MULTIPROC_DIR`` set it serves what
every process wrote there, added up (:mod:`eventisc.multiproc`); :func:`serve_directory` does
that for a process with no app of its own (``eventisc serve-metrics``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.registry import CollectorRegistry

from .multiproc import collector, directory
from .prometheus import export_default, writer

__all__ = ["MetricsServer", "serve_directory", "start"]


class MetricsServer:
    """A running ``/metrics`` endpoint: its ``url`` and ``port``; :meth:`stop` ends it."""

    def __init__(self, server: Any, thread: threading.Thread):
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The port it listens on (the one picked when started with port 0)."""
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}/metrics"

    def wait(self) -> None:
        """Block until the server stops."""
        self._thread.join()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def start(port: int, addr: str, default: Callable[[], Any]) -> MetricsServer:
    """Serve this process's apps (``default()``: the default app, looked up at each scrape),
    or with ``PROMETHEUS_MULTIPROC_DIR`` set the numbers of every process writing there."""
    export_default(default)
    path = directory()
    if path is None:
        return _serve(REGISTRY, port, addr)
    registry = CollectorRegistry()
    registry.register(collector(path, writer()))
    return _serve(registry, port, addr)


def serve_directory(path: str, port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve the numbers the processes of a service wrote to ``path`` in multiprocess mode,
    added up (ValueError when ``path`` is not a directory)."""
    registry = CollectorRegistry()
    registry.register(collector(path))
    return _serve(registry, port, addr)


def _serve(registry: CollectorRegistry, port: int, addr: str) -> MetricsServer:
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)
