"""Network faults for tests: a real TCP relay in front of a real service, and free ports.

:class:`FaultRelay` listens on 127.0.0.1 and forwards each connection to ``upstream``. A test
switches its :attr:`~FaultRelay.mode` to make a fault on the wire while the service itself
stays healthy; the drivers under test are never patched:

- ``forward``: a plain relay;
- ``stall``: connections are accepted and nothing is forwarded either way, on links that exist
  and on new ones (a peer that accepts TCP and never answers: a stalled handshake, a hung
  broker, a black-holed link);
- ``reset``: new connections are accepted and reset at once (RST);
- ``trickle``: what the service sends is forwarded one byte every ``trickle_delay`` seconds (a
  receiver that trickles its answer).

:meth:`~FaultRelay.cut` closes every link (FIN), :meth:`~FaultRelay.reset_links` resets them
(RST), like a restart of the service.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

__all__ = ["MODES", "FaultRelay", "dead_url", "free_port"]

MODES = ("forward", "stall", "reset", "trickle")


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dead_url(scheme: str = "http", path: str = "/x") -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    return f"{scheme}://127.0.0.1:{free_port()}{path}"


def _rst(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


class FaultRelay:
    """A TCP relay on 127.0.0.1 to ``upstream`` whose behaviour a test sets (see the module).

    ``port`` may be given to reuse a port (a service coming back where it was). Close it with
    :meth:`close`, or use it as a context manager.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        mode: str = "forward",
        *,
        port: int = 0,
        trickle_delay: float = 0.2,
    ):
        self.upstream = upstream
        self.mode = mode
        self.trickle_delay = trickle_delay
        #: Connections accepted so far.
        self.accepted = 0
        self._server = socket.create_server(("127.0.0.1", port))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="fault-relay", daemon=True).start()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                if self._closed:
                    return
                continue
            self.accepted += 1
            if self._mode == "reset":
                _rst(client)
                continue
            with self._lock:
                self._sockets.append(client)
            threading.Thread(target=self._link, args=(client,), daemon=True).start()

    def _link(self, client: socket.socket) -> None:
        upstream = None
        try:
            while self._mode == "stall" and not self._closed:
                time.sleep(0.02)  # accepted, never connected on: nothing comes back
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.append(upstream)
            self._pump(client, upstream)
        except (OSError, ValueError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        held = b""  # what the service sent, not yet trickled to the client
        while not self._closed:
            mode = self._mode
            if mode == "stall":
                time.sleep(0.02)
                continue
            if held and mode == "trickle":
                client.sendall(held[:1])
                held = held[1:]
                time.sleep(self.trickle_delay)
                continue
            if held:
                client.sendall(held)
                held = b""
            ready, _, _ = select.select([client, upstream], [], [], 0.05)
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is client:
                    upstream.sendall(data)
                elif mode == "trickle":
                    held += data
                else:
                    client.sendall(data)

    def cut(self) -> None:
        """Close every link (the peers see an orderly close)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reset_links(self) -> None:
        """Reset every link (RST), like a service that restarted."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _rst(sock)

    def close(self) -> None:
        self._closed = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        self.reset_links()

    def __enter__(self) -> FaultRelay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
