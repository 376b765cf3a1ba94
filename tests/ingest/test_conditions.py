"""Operating-condition names: plain names as sent, names spelled as attributes in one
canonical form with their attributes, bad names a 422 saying why."""

from __future__ import annotations

import pytest

from ingest.conditions import (
    attributes_name,
    canonical_condition,
    check_condition,
    condition_attributes,
)
from ingest.errors import BatchValidationError


@pytest.mark.parametrize("name", ["1800rpm", "high speed", "load=high=very", "a=1,", "=3",
                                  "rpm=1800,rpm=1900", "über=1"])
def test_a_plain_name_is_kept_as_sent_without_attributes(name: str) -> None:
    assert canonical_condition(name) == (name, {})
    assert check_condition(name) == name


def test_a_name_spelled_as_attributes_gets_one_canonical_form() -> None:
    name, attributes = canonical_condition("rpm=1800, load=high,ratio=0.5")
    assert attributes == {"rpm": 1800, "load": "high", "ratio": 0.5}
    assert name == "load=high,ratio=0.5,rpm=1800"
    assert check_condition("rpm=1800, load=high,ratio=0.5") == name
    # The conditions API's attributes name the same condition.
    assert attributes_name({"ratio": 0.5, "rpm": 1800, "load": "high"}) == name
    assert canonical_condition(name) == (name, attributes)  # stable


@pytest.mark.parametrize(("text", "value"), [("1800", 1800), ("-2", -2), ("0.25", 0.25),
                                             ("01", "01"), ("1e3", "1e3"), ("nan", "nan"),
                                             ("inf", "inf"), ("high", "high"),
                                             ("true", True), ("False", False)])
def test_attribute_values_are_booleans_or_numbers_only_when_they_print_back_as_sent(
        text: str, value: object) -> None:
    assert condition_attributes(f"x={text}") == {"x": value}


@pytest.mark.parametrize(("value", "says"), [(1800, "got a number"), (None, "got null"),
                                             ({"rpm": 1}, "got an object"),
                                             ("", "is not a condition name"),
                                             ("a\nb", "is not a condition name"),
                                             ("x" * 201, "is not a condition name")])
def test_a_bad_condition_is_a_422_saying_why(value: object, says: str) -> None:
    with pytest.raises(BatchValidationError, match=says) as raised:
        check_condition(value, "query.condition")
    assert raised.value.status == 422
    assert str(raised.value).startswith("query.condition")
