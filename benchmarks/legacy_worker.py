"""Runs event-isc 0.1.0 workloads, inside benchmarks/.venv-event-isc (never our eventisc).

Started by :mod:`benchmarks.legacy` as ``<venv>/bin/python -I legacy_worker.py``. It reads one
JSON request per line on stdin and answers one JSON line on stdout: ``{"ok": true, ...}`` with
``seconds`` (per operation for micro benchmarks, in all for throughput), or ``{"ok": false,
"error": "..."}``. ``--memory N`` instead builds an app of N listeners and prints its peak RSS.
This file must run on its own: it imports nothing from the benchmarks package.
"""

import gc
import json
import sys
import time
import traceback
from itertools import repeat

import eventisc
from eventisc import EventApp, Listener


class NullListener(Listener):
    kind = "bench_null"

    def _do_notify(self, event_name, event_data):
        return True


_apps = {}


def routing_listeners(n, kind="bench_null", extra=None):
    """Half exact names, half regexes; each event name matches at most one of them."""
    listeners = []
    for i in range(n):
        if i % 2 == 0:
            listener = {"kind": kind, "event_name": f"svc.e{i}"}
        else:
            listener = {"kind": kind, "event_name_regex": f"svc[.]r{i}[.]"}
        listener.update(extra or {})
        listeners.append(listener)
    return listeners


def per_op(fn, iterations):
    gc.collect()
    start = time.perf_counter()
    for _ in repeat(None, iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def op_hello(req):
    import importlib.metadata as md

    versions = {}
    for name in ("event-isc", "requests", "pika", "celery", "kombu", "environs"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return {"versions": versions, "python": sys.version.split()[0], "file": eventisc.__file__}


def op_routing(req):
    n = req["listeners"]
    app = _apps.get(("routing", n))
    if app is None:
        app = _apps[("routing", n)] = EventApp("", routing_listeners(n))
    name, data = req["event"], {}
    return {"seconds": per_op(lambda: app.trigger(name, data), req["iterations"])}


def op_filter(req):
    key = ("filter", req["filter"])
    app = _apps.get(key)
    if app is None:
        listener = {"kind": "bench_null", "event_name": "svc.one"}
        if req["filter"]:
            listener["filter"] = {"kind": "expr", "expr": req["filter"]}
        app = _apps[key] = EventApp("", [listener])
    data = req["data"]
    return {"seconds": per_op(lambda: app.trigger("svc.one", data), req["iterations"])}


def op_render(req):
    templates, name, data = req["templates"], req["event_name"], req["data"]
    fmt = Listener.format

    def render():
        return {key: fmt(value, name, data) for key, value in templates.items()}

    return {"seconds": per_op(render, req["iterations"]), "sample": render()}


def op_custom_kind(req):
    """A custom kind from its source (the same text our side runs), built on event-isc's
    ``Listener``; times its ``_do_notify``, which renders its fields with ``self.format``."""
    key = ("custom_kind", req["source"], json.dumps(req["options"], sort_keys=True))
    listener = _apps.get(key)
    if listener is None:
        namespace = {"Listener": Listener}
        exec(req["source"], namespace)
        kinds = [v for v in namespace.values() if isinstance(v, type) and "kind" in vars(v)]
        listener = _apps[key] = kinds[0](req["event_name"], **req["options"])
    name, data = req["event_name"], req["data"]
    seconds = per_op(lambda: listener._do_notify(name, data), req["iterations"])
    return {"seconds": seconds, "sample": listener.sent}


def op_http(req):
    app = EventApp(
        "",
        [{"kind": "http", "event_name": "svc.http", "url": req["url"], "data": req["templates"]}],
    )
    data = req["data"]
    start = time.perf_counter()
    sent = sum(app.trigger("svc.http", data) for _ in range(req["count"]))
    return {"seconds": time.perf_counter() - start, "sent": sent}


def op_rabbit(req):
    queue = req["queue"]
    app = EventApp(
        "",
        [
            {
                "kind": "rabbit",
                "event_name": "svc.rabbit",
                "url": req["url"],
                "queue_kwargs": {"queue": {"queue": queue, "durable": req.get("durable", True)}},
                "publish_kwargs": {"exchange": "", "routing_key": queue},
            }
        ],
    )
    data = req["data"]
    start = time.perf_counter()
    for _ in range(req["count"]):
        app.trigger("svc.rabbit", data)
    seconds = time.perf_counter() - start
    listener = app.listeners[0]
    if listener.connection is not None:
        listener.connection.close()
    return {"seconds": seconds}


def op_celery(req):
    import celery

    capp = celery.Celery("bench-event-isc", broker=req["broker"], set_as_current=True)
    capp.set_default()
    app = EventApp(
        "",
        [
            {
                "kind": "celery",
                "event_name": "svc.celery",
                "queue": req["queue"],
                "task_name": "bench.noop",
            }
        ],
    )
    data = req["data"]
    try:
        start = time.perf_counter()
        for _ in range(req["count"]):
            app.trigger("svc.celery", data)
        return {"seconds": time.perf_counter() - start}
    finally:
        capp.close()


def memory(n):
    import eventisc.http_listener  # noqa: F401
    import requests  # noqa: F401  (loaded in both processes, as eventisc's http kind does)

    before = _status("VmRSS")
    data = {f"f{k}": f"{{event_data[f{k}]}}" for k in range(5)}
    app = EventApp("", routing_listeners(n, "http", {"url": "http://127.0.0.1:9/x", "data": data}))
    print(
        json.dumps(
            {
                "baseline_kb": before,
                "peak_kb": _status("VmHWM"),
                "rss_kb": _status("VmRSS"),
                "listeners": len(app.listeners),
            }
        )
    )


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


OPS = {
    "hello": op_hello,
    "routing": op_routing,
    "filter": op_filter,
    "render": op_render,
    "custom_kind": op_custom_kind,
    "http": op_http,
    "rabbit": op_rabbit,
    "celery": op_celery,
}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        memory(int(sys.argv[2]))
        return
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            answer = {"ok": True, **OPS[req["op"]](req)}
        except Exception as exc:
            answer = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5),
            }
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
