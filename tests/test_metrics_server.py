"""/metrics served from inside the service, and Prometheus' multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

import eventisc

from .receiver import Receiver


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a real /metrics endpoint, parsed by prometheus_client's parser; each
    family must appear once."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples = {}
    names = []
    for family in text_string_to_metric_families(text):
        names.append(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert len(names) == len(set(names)), "a metric family is written twice"
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted({"app": "eventisc", **labels}.items())))]


def hook(url: str, name: str = "hook") -> list[dict[str, str]]:
    return [{"kind": "http", "name": name, "event_name": "e", "url": url}]


@pytest.fixture
def server():
    """Starts eventisc's metrics server on a free port; stopped at the end."""
    started = []

    def start() -> eventisc.metrics_server.MetricsServer:
        started.append(eventisc.start_metrics_server(0))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def test_the_server_shows_the_default_app_of_this_process(receiver, server):
    eventisc.init_default_app(listeners=hook(receiver.url))
    for _ in range(3):
        eventisc.trigger("e")
    metrics = server()
    samples = scrape(metrics.url)
    assert value(samples, "eventisc_triggered_total") == 3
    delivered = value(samples, "eventisc_deliveries_total", listener="hook", outcome="delivered")
    assert delivered == 3
    assert value(samples, "eventisc_delivery_latency_seconds_count", listener="hook") == 3
    # The default app is looked up at each scrape: built again, it is the one shown.
    eventisc.init_default_app(listeners=hook(receiver.url, "other"))
    eventisc.trigger("e")
    samples = scrape(metrics.url)
    assert value(samples, "eventisc_triggered_total") == 1
    assert value(samples, "eventisc_matched_total", listener="other") == 1
    assert ("eventisc_matched_total", (("app", "eventisc"), ("listener", "hook"))) not in samples


def test_the_server_shows_every_registered_app_each_family_once(receiver, server):
    eventisc.init_default_app(listeners=hook(receiver.url))
    shop = eventisc.create_app(listeners=hook(receiver.url, "orders"))
    billing = eventisc.create_app(listeners=hook(receiver.url, "invoices"))
    shop.register_prometheus(name="shop")
    billing.register_prometheus(name="billing")  # a second app in the default registry
    shop.trigger("e")
    billing.trigger("e")
    billing.trigger("e")
    samples = scrape(server().url)
    assert value(samples, "eventisc_triggered_total", app="shop") == 1
    assert value(samples, "eventisc_triggered_total", app="billing") == 2
    assert value(samples, "eventisc_triggered_total") == 0  # the default app
    with pytest.raises(ValueError, match="another app is exported as app='shop'"):
        billing.register_prometheus(name="shop")


def test_a_stopped_server_no_longer_answers(receiver):
    eventisc.init_default_app(listeners=hook(receiver.url))
    metrics = eventisc.start_metrics_server(0)
    assert metrics.url == f"http://127.0.0.1:{metrics.port}/metrics"
    scrape(metrics.url)
    metrics.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(metrics.url, timeout=2)


#: A worker process of a multiprocess service: builds the default app, triggers N events.
WORKER = textwrap.dedent(
    """
    import sys
    import eventisc

    url, n, delivery = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    eventisc.init_default_app(
        listeners=[{"kind": "http", "name": "hook", "event_name": "e", "url": url}],
        delivery=delivery,
    )
    for _ in range(n):
        eventisc.trigger("e")
    eventisc.get_current_app().flush(30)
    print("done", flush=True)
    """
)


def run_workers(tmp_path: Path, receiver: Receiver, n: int, delivery: str) -> list[int]:
    """Two worker processes writing to the multiprocess directory ``tmp_path / "metrics"``."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), receiver.url, str(n), delivery],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0 and out.strip() == "done"
    return [worker.pid for worker in workers]


def serve_metrics(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventisc", "serve-metrics", "--dir", str(directory)]
        + ["--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc


def test_workers_of_a_multiprocess_service_add_up(tmp_path, receiver):
    # Given two worker processes that each triggered N events (sync delivery)
    n = 7
    run_workers(tmp_path, receiver, n, "sync")
    assert len(receiver.requests) == 2 * n
    # When the directory is scraped, as a user runs it
    proc = serve_metrics(tmp_path / "metrics")
    try:
        line = proc.stdout.readline()
        assert f"serving the metrics of {tmp_path / 'metrics'} on http://127.0.0.1:" in line
        samples = scrape(line.rsplit(" on ", 1)[1].strip())
    finally:
        proc.terminate()
        proc.wait(10)
    # Then the counts of both workers add up
    assert value(samples, "eventisc_triggered_total") == 2 * n
    assert value(samples, "eventisc_matched_total", listener="hook") == 2 * n
    delivered = value(samples, "eventisc_deliveries_total", listener="hook", outcome="delivered")
    assert delivered == 2 * n
    assert value(samples, "eventisc_delivery_latency_seconds_count", listener="hook") == 2 * n
    top = value(samples, "eventisc_delivery_latency_seconds_bucket", listener="hook", le="+Inf")
    assert top == 2 * n
    assert value(samples, "eventisc_delivery_latency_seconds_sum", listener="hook") > 0


def test_gauges_follow_their_multiprocess_mode_and_dead_workers_leave(tmp_path, receiver):
    from eventisc.metrics_server import serve_directory

    pids = run_workers(tmp_path, receiver, 3, "background")
    metrics = serve_directory(str(tmp_path / "metrics"), 0)
    try:
        samples = scrape(metrics.url)
        assert value(samples, "eventisc_arrivals_total") == 6  # counters add up
        assert value(samples, "eventisc_queue_capacity") == 2 * 10_000  # livesum
        assert value(samples, "eventisc_circuit_open", listener="hook") == 0  # livemax
        # gunicorn's child_exit hook: a dead worker's live gauges leave, its counts stay
        mark_process_dead(pids[0], str(tmp_path / "metrics"))
        samples = scrape(metrics.url)
        assert value(samples, "eventisc_queue_capacity") == 10_000
        assert value(samples, "eventisc_arrivals_total") == 6
        mark_process_dead(pids[1], str(tmp_path / "metrics"))
        assert ("eventisc_queue_capacity", (("app", "eventisc"),)) not in scrape(metrics.url)
    finally:
        metrics.stop()


#: gunicorn's preload_app: the app is built (and used) before the workers are forked.
PRELOADED = textwrap.dedent(
    """
    import os, sys
    import eventisc

    eventisc.init_default_app(
        listeners=[{"kind": "http", "name": "hook", "event_name": "e", "url": sys.argv[1]}]
    )
    eventisc.trigger("e")  # counted by the parent before the fork
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            for _ in range(5):
                eventisc.trigger("e")
            sys.exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    print("done", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_workers_count_only_their_own_events(tmp_path, receiver):
    from eventisc.metrics_server import serve_directory

    (tmp_path / "metrics").mkdir()
    script = tmp_path / "preload.py"
    script.write_text(PRELOADED)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    done = subprocess.run(
        [sys.executable, str(script), receiver.url], env=env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "done", done.stderr
    metrics = serve_directory(str(tmp_path / "metrics"), 0)
    try:
        samples = scrape(metrics.url)
    finally:
        metrics.stop()
    assert len(receiver.requests) == 11
    assert value(samples, "eventisc_triggered_total") == 11  # 1 + 2 × 5, none twice
    delivered = value(samples, "eventisc_deliveries_total", listener="hook", outcome="delivered")
    assert delivered == 11


def test_serve_metrics_needs_a_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    run = [sys.executable, "-m", "eventisc", "serve-metrics", "--port", "0"]
    missing = subprocess.run(run, env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "PROMETHEUS_MULTIPROC_DIR" in missing.stderr
    not_a_dir = subprocess.run(
        [*run, "--dir", str(tmp_path / "nothing")], env=env, capture_output=True, timeout=30
    )
    assert not_a_dir.returncode == 2 and b"is not a directory" in not_a_dir.stderr


#: A process of the service that serves the directory itself (gunicorn's arbiter would).
SERVING = textwrap.dedent(
    """
    import sys
    import eventisc

    eventisc.init_default_app(
        listeners=[{"kind": "http", "name": "hook", "event_name": "e", "url": sys.argv[1]}]
    )
    eventisc.trigger("e")
    eventisc.trigger("e")
    server = eventisc.start_metrics_server(0)
    print(server.url, flush=True)
    sys.stdin.read()  # until the test is done
    server.stop()
    """
)


def test_a_process_of_the_service_serves_every_process_and_its_own_numbers_now(tmp_path, receiver):
    n = 4
    run_workers(tmp_path, receiver, n, "sync")
    script = tmp_path / "serving.py"
    script.write_text(SERVING)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    proc = subprocess.Popen(
        [sys.executable, str(script), receiver.url],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Scraped at once: its own two events are there before its writer's first round.
        samples = scrape(proc.stdout.readline().strip())
    finally:
        proc.communicate("", timeout=30)
    assert value(samples, "eventisc_triggered_total") == 2 * n + 2
    delivered = value(samples, "eventisc_deliveries_total", listener="hook", outcome="delivered")
    assert delivered == 2 * n + 2
