"""Filters: the expr filter, custom filter kinds, errors at load and at run time."""

from __future__ import annotations

import pytest

import eventisc
from eventisc import ConfigError, Filter, TemplateError

from .kinds import RecordingListener


def app_with(filter_def):
    return eventisc.create_app(
        listeners=[{"kind": "recording", "event_name": "e", "filter": filter_def}]
    )


def test_expr_filter_keeps_only_matching_events():
    app = app_with({"kind": "expr", "expr": "event_data['fii'] > 10"})
    assert app.trigger("e", {"fii": 11}) == 1
    assert app.trigger("e", {"fii": 10}) == 0
    assert app.listeners[0].calls == [("e", {"fii": 11})]


def test_expr_filter_can_use_the_event_name():
    app = app_with({"kind": "expr", "expr": "event_name.startswith('e') and not event_data"})
    assert app.trigger("e") == 1


def test_a_filter_that_raises_is_a_failure_naming_the_listener(caplog):
    app = app_with({"kind": "expr", "expr": "event_data['fii'] > 10"})
    app.raise_errors = True
    with pytest.raises(eventisc.TriggerError) as info:
        app.trigger("e", {"other": 1})
    ((name, exc),) = info.value.failures
    assert name == "recording:e"
    assert isinstance(exc, TemplateError)
    assert "no key 'fii'" in str(exc) and "recording:e" in str(exc)


class EvenFilter(Filter):
    kind = "even"
    schema = {"properties": {"field": {"type": "string"}}, "required": ["field"]}

    def __init__(self, field):
        self.field = field

    def __call__(self, event_name, event_data):
        return event_data[self.field] % 2 == 0


def test_custom_filter_kinds_register_by_subclassing():
    app = app_with({"kind": "even", "field": "n"})
    assert [app.trigger("e", {"n": n}) for n in range(4)] == [1, 0, 1, 0]


def test_a_plain_callable_works_as_a_filter():
    listener = RecordingListener("e", filter=lambda name, data: data.get("ok", False))
    app = eventisc.create_app(listeners=[listener])
    assert app.trigger("e", {"ok": True}) == 1
    assert app.trigger("e", {}) == 0


def test_a_custom_filter_that_raises_reports_its_own_error():
    app = app_with({"kind": "even", "field": "n"})
    app.raise_errors = True
    with pytest.raises(eventisc.TriggerError) as info:
        app.trigger("e", {"m": 1})
    ((_, exc),) = info.value.failures
    assert isinstance(exc, KeyError) and exc.args == ("n",)
    assert app.stats()["listeners"]["recording:e"]["failed"] == 1


def test_a_filter_replaced_after_the_app_was_built_is_used():
    app = app_with({"kind": "expr", "expr": "event_data['n'] > 10"})
    assert app.trigger("e", {"n": 5}) == 0
    app.listeners[0].filter = EvenFilter("n")
    assert app.trigger("e", {"n": 4}) == 1
    app.listeners[0].filter = None
    assert app.trigger("e", {"n": 5}) == 1


class FastOddFilter(Filter):
    """Exposes its test as ``predicate``; ``__call__`` would fail if the app used it."""

    kind = "fast_odd"

    def __init__(self):
        self.predicate = lambda event_name, event_data: event_data["n"] % 2

    def __call__(self, event_name, event_data):
        raise AssertionError("the app calls predicate, not the filter")

    def failure(self, exc):
        return TemplateError(f"fast_odd failed: {exc!r}")


def test_the_app_calls_a_filters_predicate_and_reports_its_failure():
    app = app_with({"kind": "fast_odd"})
    app.raise_errors = True
    assert [app.trigger("e", {"n": n}) for n in range(4)] == [0, 1, 0, 1]
    with pytest.raises(eventisc.TriggerError) as info:
        app.trigger("e", {})
    ((_, exc),) = info.value.failures
    assert isinstance(exc, TemplateError) and "fast_odd failed: KeyError('n')" in str(exc)
    assert isinstance(exc.__cause__, KeyError)


@pytest.mark.parametrize(
    ("filter_def", "path", "message"),
    [
        ({"kind": "exp", "expr": "True"}, "listeners[0].filter.kind", "did you mean 'expr'"),
        ({"kind": "expr"}, "listeners[0].filter", "'expr' is a required property"),
        ({"kind": "expr", "expr": "1 +"}, "listeners[0].filter.expr", "not a valid expression"),
        ({"kind": "expr", "expr": "os.system('x')"}, "listeners[0].filter.expr", "unknown name"),
        ({"kind": "expr", "expr": "x", "extra": 1}, "listeners[0].filter.extra", "unknown option"),
        ({"kind": "even"}, "listeners[0].filter", "'field' is a required property"),
    ],
)
def test_bad_filters_fail_at_load(filter_def, path, message):
    with pytest.raises(ConfigError) as info:
        app_with(filter_def)
    assert info.value.path == path
    assert message in str(info.value)


# -- custom filter kinds as event-isc code writes them ------------------------------------------


class MinTotalFilter(Filter):
    """An event-isc style filter: no schema, and no ``super().__init__()``."""

    kind = "compat_min_total"

    def __init__(self, minimum, field="total"):
        self.minimum = minimum
        self.field = field

    def __call__(self, event_name, event_data):
        return event_data[self.field] >= self.minimum


class PrefixFilter(MinTotalFilter):
    """A subclass of a custom filter registering a kind of its own, with a schema."""

    kind = "compat_prefix"
    schema = {"properties": {"prefix": {"type": "string"}}, "required": ["prefix"]}

    def __init__(self, prefix):
        self.prefix = prefix

    def __call__(self, event_name, event_data):
        return event_name.startswith(self.prefix)


def test_an_event_isc_style_filter_works_in_a_config():
    app = app_with({"kind": "compat_min_total", "minimum": 10})
    assert [app.trigger("e", {"total": t}) for t in (9, 10, 11)] == [0, 1, 1]
    filter_ = app.listeners[0].filter
    assert isinstance(filter_, MinTotalFilter) and (filter_.minimum, filter_.field) == (10, "total")


def test_a_filter_without_schema_gets_its_options_as_keywords():
    app = app_with({"kind": "compat_min_total", "minimum": 3, "field": "n"})
    assert [app.trigger("e", {"n": n}) for n in (2, 3)] == [0, 1]
    with pytest.raises(ConfigError) as info:
        app_with({"kind": "compat_min_total", "minimum": 3, "colour": "red"})
    assert info.value.path == "listeners[0].filter"
    assert "bad options for a compat_min_total filter" in str(info.value)
    assert "colour" in str(info.value)


def test_a_subclass_of_a_custom_filter_registers_its_own_kind():
    assert Filter.get("compat_prefix") is PrefixFilter
    assert Filter.get("compat_min_total") is MinTotalFilter
    app = eventisc.create_app(
        listeners=[
            {
                "kind": "recording",
                "event_name_regex": "shop[.].*",
                "filter": {"kind": "compat_prefix", "prefix": "shop.order"},
            }
        ]
    )
    assert app.trigger("shop.order_paid") == 1 and app.trigger("shop.cart") == 0
    with pytest.raises(ConfigError) as info:
        app_with({"kind": "compat_prefix", "prefix": "x", "minimum": 1})
    assert info.value.path == "listeners[0].filter.minimum"


def test_custom_filters_from_dict_and_in_python_listeners():
    # event-isc's Filter.from_dict, and a Listener built in Python with a filter mapping.
    keep = Filter.from_dict({"kind": "compat_min_total", "minimum": 5})
    assert (
        isinstance(keep, MinTotalFilter) and keep("e", {"total": 5}) and not keep("e", {"total": 4})
    )
    listener = RecordingListener("e", filter={"kind": "compat_min_total", "minimum": 5})
    app = eventisc.create_app(listeners=[listener])
    assert app.trigger("e", {"total": 4}) == 0 and app.trigger("e", {"total": 6}) == 1
    assert (
        listener.notify("e", {"total": 7}) is True and listener.notify("e", {"total": 1}) is False
    )


def test_a_failing_event_isc_style_filter_is_that_listener_s_failure():
    app = app_with({"kind": "compat_min_total", "minimum": 1})
    app.raise_errors = True
    with pytest.raises(eventisc.TriggerError) as info:
        app.trigger("e", {})
    ((name, exc),) = info.value.failures
    assert name == "recording:e" and isinstance(exc, KeyError)
