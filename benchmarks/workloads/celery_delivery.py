"""``delivery: celery`` on RabbitMQ: ``trigger`` handing notifications to the Celery queue vs a
raw ``send_task`` of the same task, publisher confirms on in both."""

from __future__ import annotations

import time
from typing import Any

import eventisc
from eventisc._spool_codec import encode_payload
from eventisc.notification import new_id

from ..harness import Check, Context, Skip, Table, alternate, row, speedup
from ..support import RABBITMQ, require, wait_for
from .celery_send import BROKERS, _checked
from .rabbit import DATA, SETTLE

__all__ = ["celery_delivery"]

EVENT_NAME = "shop.order_paid"
LISTENER = {
    "kind": "http",
    "name": "billing",
    "event_name": EVENT_NAME,
    "url": "http://127.0.0.1:9/hooks/order",  # never called: no worker runs
    "data": "{event_data}",
}


def celery_delivery(ctx: Context) -> list[Table]:
    try:
        import celery
    except ImportError as exc:
        raise Skip(f"celery is not installed: {exc}") from None
    url, address = BROKERS["RabbitMQ"]
    require("RabbitMQ", address)
    n = ctx.scale(2500, 500)
    table = Table(
        "celery-delivery",
        "delivery: celery on RabbitMQ",
        f"{n:,} notifications per repetition (an http listener, the 200-byte event data as its "
        "JSON body) handed to a fresh queue, deleted afterwards; no worker runs. Ours: "
        "`trigger` with `delivery: celery` and `celery_delivery.broker_url` (render, encode "
        "the payload, send `eventisc.deliver` through eventisc's own Celery app, with "
        "publisher confirms). Raw: `send_task('eventisc.deliver', ...)` in a loop with the "
        "same arguments (the payload encoded once, beforehand) on a Celery app with "
        "`confirm_publish`, a new task id each. Tasks per second; the queue length is checked "
        "after each repetition.",
    )
    raw_app = celery.Celery("bench-raw", broker=url, set_as_current=False)
    raw_app.conf.broker_transport_options = {"confirm_publish": True}
    with eventisc.App(listeners=[LISTENER]) as probe:
        rendered = probe.routes(EVENT_NAME)[0].render(EVENT_NAME, DATA)
    text = encode_payload(rendered.payload, "billing")

    def raw(queue: str) -> float:
        start = time.perf_counter()
        for _ in range(n):
            task_id = new_id()
            raw_app.send_task(
                "eventisc.deliver",
                args=[task_id, "billing", text, EVENT_NAME, 0],
                task_id=task_id,
                queue=queue,
            )
        return time.perf_counter() - start

    def ours(queue: str) -> float:
        options: dict[str, Any] = {"broker_url": url, "queue": queue}
        app = eventisc.App(listeners=[LISTENER], delivery="celery", celery_delivery=options)
        try:
            start = time.perf_counter()
            sent = sum(app.trigger(EVENT_NAME, DATA) for _ in range(n))
            seconds = time.perf_counter() - start
        finally:
            app.close()
        if sent != n:
            raise RuntimeError(f"only {sent} of {n} handed off")
        return seconds

    ctx.log(f"delivery: celery on RabbitMQ, {n} notifications")
    try:
        s = alternate(
            {
                "raw": lambda: _checked("RabbitMQ", n, raw),
                "ours": lambda: _checked("RabbitMQ", n, ours),
            },
            ctx.reps * 2,
            progress=ctx.log,
            recover=lambda: wait_for("RabbitMQ", RABBITMQ),
            settle=SETTLE,
        )
    finally:
        raw_app.close()
    table.rows += [
        row("raw send_task loop (confirms)", s["raw"], rate=True),
        row(
            "ours, trigger with delivery: celery",
            s["ours"],
            rate=True,
            checks=[Check("trigger vs raw send_task", speedup(s["ours"], s["raw"]), ">=", 0.9)],
        ),
    ]
    return [table]
