"""The outbox through a real Django connection (``django.db.connection``), in
``transaction.atomic()``: committed with the block, or rolled back with it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import django
import psycopg
import pytest

import eventisc
from eventisc._spool_codec import decode_payload

from .support import http


@pytest.fixture(scope="module")
def django_db(postgres_url: str) -> Any:
    from django.conf import settings

    parts = urlsplit(postgres_url)
    if not settings.configured:
        settings.configure(
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": parts.path.lstrip("/") or "postgres",
                    "USER": parts.username or "postgres",
                    "PASSWORD": parts.password or "",
                    "HOST": parts.hostname or "127.0.0.1",
                    "PORT": parts.port or 5432,
                }
            },
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()
    from django.db import connection

    yield connection
    connection.close()


@pytest.fixture(scope="module")
def postgres_url() -> str:  # module-scoped: the Django settings are made once
    from .conftest import POSTGRES_URL, require_service

    parts = urlsplit(POSTGRES_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRES_URL


def test_a_django_connection_commits_and_rolls_back_with_the_atomic_block(
    django_db, postgres_url, outbox_table
):
    from django.db import transaction

    app = eventisc.App(
        listeners=[
            http("http://127.0.0.1:9/hook", "user_created", name="hook", data="{event_data}")
        ],
        delivery="outbox",
        outbox={"url": postgres_url, "table": outbox_table},
    )
    with app:
        with transaction.atomic():
            with django_db.cursor() as cursor:
                cursor.execute("SELECT 1")
            assert app.trigger("user_created", {"n": "kept"}, connection=django_db) == 1
        with pytest.raises(RuntimeError), transaction.atomic():
            app.trigger("user_created", {"n": "rolled back"}, connection=django_db)
            raise RuntimeError("the view failed")
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute(f"SELECT payload FROM {outbox_table} ORDER BY seq").fetchall()
    assert [json.loads(decode_payload(row[0])["body"])["n"] for row in found] == ["kept"]
