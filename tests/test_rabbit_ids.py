"""The rabbit kind's ``message_id``: the notification id, read back from the real broker, on
the pooled (sync) path and the pipelined publisher, unless ``properties`` set one."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import eventisc
from eventisc import Notification, Rejected
from eventisc.listeners.rabbit import RabbitListener

from .amqp import Broker


def rabbit(broker: Broker, queue: str, **options: Any) -> dict[str, Any]:
    """The config mapping of a rabbit listener publishing to ``queue``."""
    return {
        "kind": "rabbit",
        "event_name": "e",
        "url": broker.url,
        "queue_kwargs": {"queue": {"queue": queue}},
        **options,
    }


def message_ids(broker: Broker, queue: str, count: int) -> list[str | None]:
    got = broker.get(queue, count)
    assert len(got) == count
    return [properties.message_id for _, properties, _ in got]


@pytest.mark.parametrize("delivery", ["sync", "background"])
def test_the_message_id_is_the_notification_id(broker: Broker, delivery: str) -> None:
    # background with confirms publishes through the pipelined publisher, sync through the pool
    queue = broker.name()
    with eventisc.create_app(listeners=[rabbit(broker, queue)], delivery=delivery) as app:
        reports = [app.dispatch("e", {"n": n}) for n in range(3)]
        for report in reports:
            assert report.wait(10)
        ids = [delivery.notification.id for report in reports for delivery in report]
        assert all(d.status == "delivered" for report in reports for d in report)
        pooled = app.listeners[0].pool.stats().created
        assert pooled == (1 if delivery == "sync" else 0)  # background: the pipelined publisher
    assert len(set(ids)) == 3
    assert sorted(message_ids(broker, queue, 3)) == sorted(ids)


def test_both_paths_send_the_same_id_for_one_notification(broker: Broker) -> None:
    # One notification sent twice (a retry, a replay) carries one id, whichever path sends it.
    queue = broker.name()
    listener = RabbitListener("e", broker.url, queue_kwargs={"queue": {"queue": queue}})
    notification = listener.render("e", {"n": 1})
    assert listener.deliver(notification) == "confirmed"
    done = threading.Event()
    outcome: list[Any] = []
    listener.deliver_async(notification, lambda *args: (outcome.append(args), done.set()))
    assert done.wait(10) and outcome == [("confirmed", None)]
    listener.close()
    assert message_ids(broker, queue, 2) == [notification.id] * 2


@pytest.mark.parametrize("delivery", ["sync", "background"])
@pytest.mark.parametrize(
    ("message_id", "expected"),
    [("order-{event_data[n]}", "order-4"), ("fixed", "fixed"), ("{event_data.get('x')}", None)],
)
def test_a_message_id_in_properties_wins(
    broker: Broker, delivery: str, message_id: str, expected: str | None
) -> None:
    # A template rendering to None sends none: the listener's own message_id is what is sent.
    queue = broker.name()
    config = rabbit(broker, queue, properties={"message_id": message_id, "priority": 1})
    with eventisc.create_app(listeners=[config], delivery=delivery) as app:
        assert app.dispatch("e", {"n": 4}).wait(10)
    [(_, properties, body)] = broker.get(queue)
    assert (properties.message_id, properties.priority) == (expected, 1)
    assert properties.content_type == "application/json" and json.loads(body) == {"n": 4}


def test_other_properties_are_kept_along_with_the_id(broker: Broker) -> None:
    queue = broker.name()
    config = rabbit(broker, queue, properties={"headers": {"x-n": "{event_data[n]}"}})
    with eventisc.create_app(listeners=[config]) as app:
        (delivery,) = app.dispatch("e", {"n": 5})
    [(_, properties, _)] = broker.get(queue)
    assert properties.message_id == delivery.notification.id
    assert (properties.headers, properties.delivery_mode) == ({"x-n": 5}, 2)


def test_a_replayed_payload_pika_refuses_is_a_delivery_error_on_both_paths(
    broker: Broker,
) -> None:
    # A payload stored by a listener whose properties differed: translated, never a TypeError.
    queue = broker.name()
    listener = RabbitListener("e", broker.url, queue_kwargs={"queue": {"queue": queue}})
    payload = {**listener.render("e", {}).payload, "properties": {"colour": "red"}}
    stored = Notification(listener.name, "rabbit", "e", payload)
    with pytest.raises(eventisc.DeliveryError) as info:
        listener.deliver(stored)
    assert not isinstance(info.value, Rejected) and info.value.listener == listener.name
    outcome: list[Any] = []
    listener.deliver_async(stored, lambda *args: outcome.append(args))
    assert len(outcome) == 1 and isinstance(outcome[0][1], eventisc.DeliveryError)
    assert listener.pool.stats().created == 0  # refused before connecting
    listener.close()
