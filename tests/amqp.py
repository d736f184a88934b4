"""RabbitMQ helpers for tests: a plain pika client, and relays in front of the real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions as pe

from .conftest import RABBITMQ_HOST, RABBITMQ_PORT
from .faults import FaultRelay

__all__ = ["Broker", "rabbit_relay", "relay_url"]


class Broker:
    """A plain pika connection for the test's own declares, reads and clean-up."""

    def __init__(self, url: str):
        self.url = url
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def name(self, kind: str = "q") -> str:
        name = f"eventisc-test-{kind}-{uuid.uuid4().hex[:10]}"
        (self.exchanges if kind == "x" else self.queues).append(name)
        return name

    def get(self, queue: str, count: int = 1, wait: float = 5.0) -> list[tuple[Any, Any, bytes]]:
        """Read ``count`` messages from ``queue`` (waiting up to ``wait`` s for them)."""
        got: list[tuple[Any, Any, bytes]] = []
        deadline = time.monotonic() + wait
        while len(got) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                self.connection.sleep(0.05)
            else:
                got.append((method, properties, body))
        return got

    def count(self, queue: str) -> int:
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def exists(self, queue: str) -> bool:
        return self._declared(lambda channel: channel.queue_declare(queue, passive=True))

    def exchange_exists(self, exchange: str) -> bool:
        return self._declared(lambda channel: channel.exchange_declare(exchange, passive=True))

    def _declared(self, declare: Callable[[Any], object]) -> bool:
        """Whether a passive declare succeeds (on a channel of its own: a miss closes it)."""
        channel = self.connection.channel()
        try:
            declare(channel)
        except pe.ChannelClosedByBroker:
            return False
        channel.close()
        return True

    def reconnect(self) -> None:
        try:
            self.connection.close()
        except Exception:
            pass
        self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.connection.channel()

    def cleanup(self) -> None:
        try:
            self.reconnect()
            for queue in self.queues:
                self.channel.queue_delete(queue)
            for exchange in self.exchanges:
                self.channel.exchange_delete(exchange)
            self.connection.close()
        except Exception:
            pass


def rabbit_relay(port: int = 0, mode: str = "forward") -> FaultRelay:
    """A :class:`~tests.faults.FaultRelay` in front of the test RabbitMQ."""
    return FaultRelay((RABBITMQ_HOST, RABBITMQ_PORT), mode, port=port)


def relay_url(relay: FaultRelay, query: str = "") -> str:
    """The guest AMQP URL through ``relay``."""
    return f"amqp://guest:guest@127.0.0.1:{relay.port}/%2F{query}"
