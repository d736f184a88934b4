"""Routing: exact names and regexes, in config order, cached per event name."""

from __future__ import annotations

from types import SimpleNamespace

from eventisc.routing import Router

from .kinds import RecordingListener


def routes(listeners):
    """What the router indexes: routes, here reduced to their listener (pure logic)."""
    return [SimpleNamespace(listener=listener) for listener in listeners]


def listeners():
    return routes(
        [
            RecordingListener("app.user_created", name="exact"),
            RecordingListener(event_name_regex=r"app[.].*_created", name="regex"),
            RecordingListener("app.user_created", name="exact2"),
            RecordingListener(event_name_regex=r"app[.]order", name="prefix-regex"),
        ]
    )


def names(found):
    return [route.listener.name for route in found]


def test_exact_and_regex_listeners_match_in_config_order():
    router = Router(listeners())
    assert names(router.match("app.user_created")) == ["exact", "regex", "exact2"]
    assert names(router.match("app.foo_created")) == ["regex"]
    assert names(router.match("other")) == []


def test_regex_uses_re_match_anchored_at_the_start_only():
    router = Router(listeners())
    assert names(router.match("app.order_paid")) == ["prefix-regex"]
    assert names(router.match("x.app.order_paid")) == []


def test_results_are_cached_per_event_name():
    router = Router(listeners())
    first = router.match("app.foo_created")
    assert router.match("app.foo_created") is first


def test_the_cache_is_bounded():
    router = Router(listeners(), cache_size=10)
    for i in range(100):
        router.match(f"app.e{i}_created")
    assert len(router._cache) <= 10
    assert names(router.match("app.e5_created")) == ["regex"]


def test_a_thousand_listeners_route_like_ten():
    many = [RecordingListener(f"app.e{i}") for i in range(500)] + [
        RecordingListener(event_name_regex=rf"app[.]r{i}$") for i in range(500)
    ]
    router = Router(routes(many))
    assert names(router.match("app.e250")) == ["recording:app.e250"]
    assert names(router.match("app.r499")) == ["recording:app[.]r499$"]
    assert router.match("nothing") == ()
