"""``eventisc demo``: a sample config delivered to receivers on this machine.

It needs no broker: an HTTP receiver is started on 127.0.0.1. When RabbitMQ answers on the
given AMQP URL (and pika / celery are installed), the demo adds a rabbit and a celery listener
and reads their messages back from the broker.
"""

from __future__ import annotations

import io
import json
import socket
import string
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .report import Report

__all__ = ["run"]

HTTP_CONFIG = """\
name_prefix: shop.
listeners:
  - name: welcome-email
    kind: http
    event_name: shop.user_created
    url: "$receiver/send-welcome/?{query_string}"
    query_kwargs:
      source: "{event_name}"
    data:
      user_id: "{event_data['user']['id']}"
      email: "{event_data['user']['email']}"
      greeting: "Welcome, {event_data['user']['name'].title()}!"
  - name: big-orders
    kind: http
    event_name_regex: "shop[.]order_.*"
    filter: {kind: expr, expr: "event_data['total'] >= 100"}
    method: put
    url: "$receiver/orders/{event_data['id']}"
    data:
      event: "{event_name}"
      total: "{event_data['total']}"
"""

RABBIT_CONFIG = """\
  - name: audit-log
    kind: rabbit
    event_name_regex: "shop[.].*"
    url: "$amqp_url"
    queue_kwargs:
      queue: {queue: $audit_queue}
    publish_kwargs:
      exchange: ""
      routing_key: "{queue_kwargs['queue']['queue']}"
    properties:
      headers: {event: "{event_name}"}
"""

CELERY_CONFIG = """\
  - name: order-task
    kind: celery
    event_name: shop.order_paid
    broker_url: "$amqp_url"
    queue: $task_queue
    task_name: shop.handle_order
    task_kwargs: "**event_data"
"""

EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("user_created", {"user": {"id": 7, "email": "ada@example.com", "name": "ada lovelace"}}),
    ("order_paid", {"id": 1001, "total": 250, "currency": "EUR"}),
    ("order_paid", {"id": 1002, "total": 20, "currency": "EUR"}),  # big-orders' filter drops it
]


class _Receiver:
    """A tiny HTTP server that records what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                received.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_PUT = do_GET = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _reachable(url: str) -> str | None:
    """None when the broker of ``url`` accepts TCP connections, else why not."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        return f"not reachable at {host}:{port} ({exc.strerror or exc})"
    return None


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _drain(amqp_url: str, queue: str, wait: float = 5.0) -> list[Any]:
    """Read every message of ``queue`` back from RabbitMQ, then delete the queue and the
    exchange of its name (Celery declares one per queue)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        messages: list[Any] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                if messages:
                    break
                connection.sleep(0.1)
                continue
            messages.append((properties, body))
        channel.queue_delete(queue)
        channel.exchange_delete(queue)  # idempotent: nothing to do for the rabbit listener's
        return messages
    finally:
        connection.close()


def _config(
    amqp_url: str, names: dict[str, str], out: Callable[..., None]
) -> tuple[str, bool, bool]:
    """The demo's config for what this machine has: whether RabbitMQ answers, whether pika
    and celery are installed. Returns it with whether the rabbit and celery listeners are in."""
    config = HTTP_CONFIG
    broker = _reachable(amqp_url)
    use_rabbit = broker is None and _installed("pika")
    use_celery = use_rabbit and _installed("celery")
    if broker:
        out(f"RabbitMQ {broker}: skipping the rabbit and celery listeners")
    else:
        for module, extra, used in (
            ("pika", "rabbit", use_rabbit),
            ("celery", "celery", use_celery),
        ):
            if not used:
                out(f"{module} is not installed (pip install 'eventisc[{extra}]'): skipping it")
        config += (RABBIT_CONFIG if use_rabbit else "") + (CELERY_CONFIG if use_celery else "")
    return string.Template(config).safe_substitute(names), use_rabbit, use_celery


def _arrived(
    receiver: _Receiver, amqp_url: str, names: dict[str, str], using: tuple[bool, bool],
    out: Callable[..., None],
) -> bool:  # fmt: skip
    """Show what arrived; True when every expected notification did."""
    use_rabbit, use_celery = using
    out("\nWhat arrived:")
    for method, path, body in receiver.received:
        out(f"  HTTP {method} {path}\n       {body}")
    ok = len(receiver.received) == 2
    if use_rabbit:
        audit = _drain(amqp_url, names["audit_queue"])
        for properties, body in audit:
            headers = properties.headers
            out(f"  RabbitMQ {names['audit_queue']}: headers={headers} {body.decode()}")
        ok = ok and len(audit) == len(EVENTS)
    if use_celery:
        tasks = _drain(amqp_url, names["task_queue"])
        for properties, body in tasks:
            args, kwargs, _ = json.loads(body)
            task = (properties.headers or {}).get("task")
            out(f"  Celery task {task} on {names['task_queue']}: args={args} kwargs={kwargs}")
        ok = ok and len(tasks) == 2  # both order_paid events (no filter here)
    return ok


def _notified(report: Report) -> str:
    """``2 notified   # welcome-email, audit-log; big-orders: filtered out``: what ``trigger``
    returns, and who was notified (and who was not, and why)."""
    delivered = [d.name for d in report if d.status == "delivered"]
    others = [f"{d.name}: {d.detail or d.status}" for d in report if d.status != "delivered"]
    names = ", ".join(delivered) or "nobody"
    return f"{len(delivered)} notified   # " + "; ".join([names, *others])


def run(
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F", out: Callable[..., None] = print
) -> int:
    """Run the demo; return 0 when every expected notification arrived."""
    from . import create_app

    out("eventisc demo: a sample config, delivered to receivers on this machine\n")
    receiver = _Receiver()
    out(f"HTTP receiver listening on {receiver.url}")
    suffix = f"{int(time.time())}-{threading.get_ident() % 10000}"
    names = {
        "receiver": receiver.url,
        "amqp_url": amqp_url,
        "audit_queue": f"eventisc-demo-audit-{suffix}",
        "task_queue": f"eventisc-demo-tasks-{suffix}",
    }
    config, use_rabbit, use_celery = _config(amqp_url, names, out)
    out("\nConfig:\n  " + config.rstrip().replace("\n", "\n  ") + "\n")
    try:
        with create_app(config_file=io.StringIO(config)) as app:
            for name, data in EVENTS:
                report = app.dispatch(name, data)
                out(f"trigger({name!r}, {json.dumps(data)}) -> {_notified(report)}")
        ok = _arrived(receiver, amqp_url, names, (use_rabbit, use_celery), out)
    finally:
        receiver.close()
    out(
        "\n" + ("Every expected notification arrived." if ok else "Some notifications are missing!")
    )
    return 0 if ok else 1
