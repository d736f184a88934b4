"""``eventisc.contrib.django`` in a real Django project (written to a temporary directory, run
in processes of its own as ``manage.py`` runs), against the real PostgreSQL and the real HTTP
receiver: the system check, ``trigger_on_commit``, the outbox inside ``transaction.atomic``,
and ``manage.py eventisc``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from eventisc._spool_codec import decode_payload

from .receiver import Response

ROOT = Path(__file__).resolve().parent.parent

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def project(tmp_path: Path, eventisc_setting: Any, *, postgres_url: str | None = None,
            extra: str = "") -> Path:  # fmt: skip
    """A Django project in ``tmp_path``: manage.py and proj_settings.py with
    ``EVENTISC = eventisc_setting`` (unless None), and PostgreSQL as its database when given."""
    databases: dict[str, Any] = {}
    if postgres_url is not None:
        parts = urlsplit(postgres_url)
        databases["default"] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username or "postgres",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": parts.port or 5432,
        }
    settings = f"""\
        SECRET_KEY = "not-a-secret"
        INSTALLED_APPS = ["django.contrib.contenttypes", "eventisc.contrib.django"]
        DATABASES = {databases!r}
        USE_TZ = True
    """
    if eventisc_setting is not None:
        settings += f"    EVENTISC = {eventisc_setting!r}\n"
    (tmp_path / "manage.py").write_text(MANAGE)
    (tmp_path / "proj_settings.py").write_text(textwrap.dedent(settings) + extra)
    return tmp_path


def run(where: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python <args>`` in the project directory, as a user runs it there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTISC_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(where), str(ROOT)])
    env["DJANGO_SETTINGS_MODULE"] = "proj_settings"
    return subprocess.run(
        [sys.executable, *args], cwd=where, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def script(where: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` after ``django.setup()`` in the project; it must succeed."""
    path = where / "scenario.py"
    path.write_text("import django\ndjango.setup()\n" + textwrap.dedent(code))
    done = run(where, str(path))
    assert done.returncode == 0, done.stderr
    return done


def hook(receiver: Any, **options: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "name": "hook",
        "event_name": "user_created",
        "url": f"{receiver.url}/hook",
        "data": "{event_data}",
        **options,
    }


def test_manage_py_check_reports_a_config_error_with_its_path(tmp_path):
    setting = {
        "listeners": [
            {"kind": "http", "event_name": "a", "url": "http://127.0.0.1:9/a"},
            {"kind": "http", "event_name": "b", "url": "ftp://example.com/b"},
            {"kind": "python", "event_name": "c", "callable": "proj_settings:nothing_here"},
        ]
    }
    where = project(tmp_path, setting)
    done = run(where, "manage.py", "check")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "eventisc.E001" in line]
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("settings.EVENTISC: (eventisc.E001) listeners[1].url: ")
    assert lines[1].startswith("settings.EVENTISC: (eventisc.E001) listeners[2].callable: ")
    assert "has no attribute 'nothing_here'" in lines[1]


def test_manage_py_check_passes_a_good_config(tmp_path, receiver):
    where = project(tmp_path, {"listeners": [hook(receiver)]})
    done = run(where, "manage.py", "check")
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_a_config_file_named_by_the_settings_reports_its_file_and_setting(tmp_path):
    config = tmp_path / "events.yaml"
    config.write_text("listeners:\n  - kind: http\n    event_name: a\n")
    where = project(tmp_path, None, extra=f"EVENTISC_CONFIG = {str(config)!r}\n")
    done = run(where, "manage.py", "check")
    assert done.returncode == 1
    assert f"{config}: (eventisc.E001) listeners[0]: " in done.stderr
    assert f"HINT: The config comes from settings.EVENTISC_CONFIG={config}." in done.stderr


def test_manage_py_check_warns_when_the_outbox_is_not_in_djangos_database(
    tmp_path, receiver, postgres_url
):
    elsewhere = postgres_url.rsplit("/", 1)[0] + "/another_database"
    setting = {"delivery": "outbox", "outbox": {"url": elsewhere}, "listeners": [hook(receiver)]}
    where = project(tmp_path, setting, postgres_url=postgres_url)
    done = run(where, "manage.py", "check")
    assert done.returncode == 0, done.stderr  # a warning does not stop Django
    assert "settings.EVENTISC: (eventisc.W001) outbox.url names database 'another_database'" in (
        done.stderr
    )


def test_trigger_on_commit_delivers_after_commit_and_never_after_rollback(
    tmp_path, receiver, postgres_url
):
    where = project(tmp_path, {"listeners": [hook(receiver)]}, postgres_url=postgres_url)
    # Given a request to /marker sent inside the block, after trigger_on_commit
    script(
        where,
        f"""
        import urllib.request
        from django.db import transaction
        from eventisc.contrib.django import trigger_on_commit

        with transaction.atomic():
            trigger_on_commit("user_created", {{"n": "committed"}})
            urllib.request.urlopen("{receiver.url}/marker").read()
        try:
            with transaction.atomic():
                trigger_on_commit("user_created", {{"n": "rolled back"}})
                raise RuntimeError("the view failed")
        except RuntimeError:
            pass
        trigger_on_commit("user_created", {{"n": "autocommit"}})
        """,
    )
    # Then the hook was called after the marker (at commit), and not for the rollback
    requests = receiver.requests
    assert [r.path for r in requests] == ["/marker", "/hook", "/hook"]
    assert [r.json["n"] for r in requests[1:]] == ["committed", "autocommit"]


def test_outbox_trigger_inside_atomic_commits_and_rolls_back_with_it(
    tmp_path, receiver, postgres_url, outbox_table
):
    setting = {
        "delivery": "outbox",
        "outbox": {"url": postgres_url, "table": outbox_table},
        "listeners": [hook(receiver)],
    }
    where = project(tmp_path, setting, postgres_url=postgres_url)
    checked = run(where, "manage.py", "check")
    assert checked.returncode == 0 and "eventisc.W001" not in checked.stderr, checked.stderr
    done = script(
        where,
        f"""
        import psycopg
        from django.db import transaction
        import eventisc

        def rows():
            with psycopg.connect({postgres_url!r}) as other:
                return other.execute("SELECT count(*) FROM {outbox_table}").fetchone()[0]

        with transaction.atomic():
            assert eventisc.trigger("user_created", {{"n": "kept"}}) == 1
            print("inside the block:", rows())
        print("after commit:", rows())
        try:
            with transaction.atomic():
                eventisc.trigger("user_created", {{"n": "rolled back"}})
                raise RuntimeError("the view failed")
        except RuntimeError:
            pass
        print("after rollback:", rows())
        """,
    )
    # The row was written in Django's transaction: invisible to others until the commit
    assert done.stdout.split("\n")[:3] == [
        "inside the block: 0",
        "after commit: 1",
        "after rollback: 1",
    ]
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute(f"SELECT payload FROM {outbox_table}").fetchall()
    assert [json.loads(decode_payload(row[0])["body"]) for row in found] == [{"n": "kept"}]
    assert receiver.requests == []  # written, not sent: the relay sends

    relayed = run(where, "manage.py", "eventisc", "relay", "--once")
    assert relayed.returncode == 0, relayed.stderr
    assert [r.json for r in receiver.wait_for(1)] == [{"n": "kept"}]


def test_management_commands_mirror_the_command_line(tmp_path, receiver):
    extra = textwrap.dedent(
        """
        import eventisc

        @eventisc.listener("shop.user_created", name="audit")
        def audit(event_name, event_data):
            print("audit", event_name, event_data)
        """
    )
    where = project(tmp_path, {"name_prefix": "shop.", "listeners": [
        {**hook(receiver), "event_name": "shop.user_created"}]}, extra=extra)  # fmt: skip

    checked = run(where, "manage.py", "eventisc", "check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("settings.EVENTISC: OK, 2 listener(s), name_prefix 'shop.'")
    assert "audit  [python]  name  shop.user_created" in checked.stdout
    assert "-> call proj_settings:audit" in checked.stdout

    routes = run(where, "manage.py", "eventisc", "routes", "user_created")
    assert routes.returncode == 0, routes.stderr
    assert "'shop.user_created' reaches 2 listener(s):" in routes.stdout

    fired = run(where, "manage.py", "eventisc", "trigger", "user_created", "--data", '{"n": 1}')
    assert fired.returncode == 0, fired.stderr
    assert "audit shop.user_created {'n': 1}" in fired.stdout
    assert fired.stdout.count("delivered") == 2
    assert [r.json for r in receiver.wait_for(1)] == [{"n": 1}]

    dry = run(where, "manage.py", "eventisc", "trigger", "user_created", "--dry-run")
    assert dry.returncode == 0 and "not sent (dry-run)" in dry.stdout
    assert len(receiver.requests) == 1

    receiver.respond(Response(status=500))
    failed = run(where, "manage.py", "eventisc", "trigger", "user_created")
    assert failed.returncode == 1
    assert "FAILED" in failed.stdout

    no_outbox = run(where, "manage.py", "eventisc", "relay", "--once")
    assert no_outbox.returncode == 1
    assert "this config has no `outbox`" in no_outbox.stderr


def test_a_broken_config_fails_the_commands_with_its_path(tmp_path):
    where = project(tmp_path, {"listeners": [{"kind": "http", "event_name": "a"}]})
    done = run(where, "manage.py", "eventisc", "check")
    assert done.returncode == 1
    assert "eventisc check: settings.EVENTISC: listeners[0]: " in done.stderr
