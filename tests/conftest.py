"""Fixtures: real services (pinged first; missing locally means skip, in CI means fail)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

import eventisc

from .receiver import Receiver

if TYPE_CHECKING:
    from .amqp import Broker
    from .celery_worker import CeleryWorker

#: In CI an unreachable service is a failure, never a skip.
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

RABBITMQ_HOST = os.environ.get("EVENTISC_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("EVENTISC_TEST_RABBITMQ_PORT", "5672"))
REDIS_HOST = os.environ.get("EVENTISC_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("EVENTISC_TEST_REDIS_PORT", "6379"))
#: The PostgreSQL database the outbox tests use (trust auth; tables are made per test).
POSTGRES_URL = os.environ.get(
    "EVENTISC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def require_service(name: str, host: str, port: int) -> None:
    """Skip the test when ``host:port`` does not answer; under CI=true, fail instead."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = f"No connection to {name} at {host}:{port} ({exc})."
        if CI:
            pytest.fail(f"{message} CI=true: service tests must run, not skip.")
        pytest.skip(message)


def rabbitmqctl(*args: str) -> None:
    """Run rabbitmqctl (tests stop and start the broker's app to test faults)."""
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def rabbitmq_url() -> str:
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    return f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/%2F"


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"


@pytest.fixture
def postgres_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(POSTGRES_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRES_URL


@pytest.fixture
def outbox_table(postgres_url: str) -> Iterator[str]:
    """A fresh outbox table of this test's own (created; dropped at the end)."""
    import uuid

    import psycopg

    from eventisc.outbox.sql import ddl

    table = f"eventisc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(ddl(table))
    yield table
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    """A plain pika client on the test RabbitMQ; deletes the queues it named at the end."""
    from .amqp import Broker

    b = Broker(rabbitmq_url)
    yield b
    b.cleanup()


@pytest.fixture(scope="module", params=["rabbitmq", "redis"])
def celery_worker(request: pytest.FixtureRequest) -> Iterator[CeleryWorker]:
    """A real Celery worker on RabbitMQ, then on Redis (see tests/celery_worker.py).

    Module-scoped and parametrized, so pytest runs every test of one broker before starting
    the other's worker: only one in-process worker may run at a time. ``@rabbitmq_only``
    (from tests/celery_worker.py) keeps a test to RabbitMQ."""
    from .celery_worker import broker_url, run_worker

    with run_worker(request.param, broker_url(request.param)) as worker:
        yield worker


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(params=["urllib3", "requests"])
def http_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The client http listeners send through: urllib3 (the usual path), or requests (the path
    a requests-only option takes), for every listener loaded in the test."""
    if request.param == "requests":
        from eventisc.listeners.http import listener

        monkeypatch.setattr(listener, "needs_requests", lambda options: "every option")
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_secrets_known() -> Iterator[None]:
    """Each test starts with no secret values registered (a test's secrets are not hidden in
    the next test's output)."""
    from eventisc.secret_values import forget

    forget()
    yield
    forget()


@pytest.fixture(autouse=True)
def _fresh_default_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without a default app and without eventisc environment variables."""
    for var in ("EVENTISC_CONFIG", "EVENTISC_NAME_PREFIX", "EVENTISC_DRYRUN"):
        monkeypatch.delenv(var, raising=False)
    eventisc.default_app = None
    yield
    if eventisc.default_app is not None:
        eventisc.default_app.close()
    eventisc.default_app = None
