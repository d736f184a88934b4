"""JSON encoding of event data, shared by the kinds."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest

from eventisc.encoding import dumps, encode
from eventisc.errors import TemplateError


def test_compact_json_with_common_python_types():
    value = {
        "at": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2024, 5, 1),
        "price": decimal.Decimal("9.90"),
        "id": uuid.UUID(int=1),
        "tags": {"a"},
        "text": "héllo",
        "n": [1, 2.5, None, True],
    }
    assert json.loads(dumps(value)) == {
        "at": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "price": "9.90",
        "id": "00000000-0000-0000-0000-000000000001",
        "tags": ["a"],
        "text": "héllo",
        "n": [1, 2.5, None, True],
    }
    assert dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'
    assert dumps("x") == '"x"'


def test_unencodable_objects_and_cycles_are_template_errors_naming_what():
    class Model:
        pass

    with pytest.raises(TemplateError, match="cannot encode the body as JSON: Model is not JSON"):
        encode({"user": Model()})
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(TemplateError, match="circular reference"):
        encode(cyclic, "the body")
