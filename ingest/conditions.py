"""Operating-condition names as every ingest path takes them (the JSON body's
`condition`, `?condition=` on embeddings and audio, the conditions API): 1-200 characters,
no control characters; a name spelled as `key=value` pairs ("rpm=1800,load=high") is a
condition given by attributes, stored under one canonical name with those attributes, so a
sensor and the API naming the same attributes name the same condition."""

from __future__ import annotations

import math
import re
from typing import Any

from ingest.errors import BatchValidationError, json_type_name

# An operating condition's name: 1-200 characters, no control characters (as the
# conditions API and the audio upload's ?condition= accept).
CONDITION_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"
_CONDITION = re.compile(CONDITION_PATTERN)
# A condition given by attributes ("load=high,rpm=1800"): keys as the conditions API takes
# them, values as attribute_value reads them.
AttributeValue = str | int | float | bool
ATTRIBUTE_KEY_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
_ATTRIBUTE_PAIR = re.compile(r"([A-Za-z0-9_.\-]{1,64})=([^,=]+)")


def check_condition(value: object, where: str = "condition") -> str:
    """A valid operating-condition name, else BatchValidationError (422) saying why."""
    if not isinstance(value, str):
        raise BatchValidationError(f"{where} must be a string naming the operating condition, "
                                   f"got {json_type_name(value)}")
    if _CONDITION.fullmatch(value) is None:
        raise BatchValidationError(f"{where} {value[:64]!r} is not a condition name: 1-200 "
                                   "characters, no control characters")
    return canonical_condition(value)[0]


def canonical_condition(name: str) -> tuple[str, dict[str, AttributeValue]]:
    """(the name to store, its attributes): a name spelled as attributes is stored in the
    one canonical form of attributes_name, any other name as it is."""
    attributes = condition_attributes(name)
    return (attributes_name(attributes) if attributes else name), attributes


def condition_attributes(name: str) -> dict[str, AttributeValue]:
    """The attributes a condition name spells as `key=value` pairs joined by commas
    ("rpm=1800,load=high" -> {"rpm": 1800, "load": "high"}); {} for a plain name."""
    pairs = [_ATTRIBUTE_PAIR.fullmatch(part.strip()) for part in name.split(",")]
    if not all(pairs):
        return {}
    found = [(m.group(1), attribute_value(m.group(2).strip())) for m in pairs if m]
    keys = [k for k, _ in found]
    return dict(found) if len(set(keys)) == len(keys) else {}


def attributes_name(attributes: dict[str, Any]) -> str:
    """The one name of a condition given by attributes, whoever gives it (the conditions
    API or a sensor): sorted `key=value` pairs, so "rpm=1800,load=high" from a sensor and
    {"load": "high", "rpm": 1800} through the API are the same condition."""
    return ",".join(f"{k}={v}" for k, v in sorted(attributes.items()))[:200]


def attribute_value(text: str) -> AttributeValue:
    """One attribute value as text (a sensor's `rpm=1800`, the CLI's `--attr rpm=1800`) in
    its JSON type: true/false (either case, as JSON or Python print them) a boolean, a
    finite number that prints back as sent a number, anything else text."""
    if text in ("true", "True", "false", "False"):
        return text.lower() == "true"
    for parse in (int, float):
        try:
            number = parse(text)
        except ValueError:
            continue
        # "1e3" and "01" stay text (names stay stable), "nan" and "inf" too (JSON has no
        # such numbers).
        return number if str(number) == text and math.isfinite(number) else text
    return text
