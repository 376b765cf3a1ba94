"""Declarative parameter specifications and their validation.

Each algorithm declares its tunable parameters as :class:`ParamSpec` objects. The same
specs drive ``GET /v1/detectors`` (via :meth:`ParamSpec.to_dict`), request validation in
the registry, and a re-check inside ``fit`` so ``set_params`` cannot smuggle in values the
API would have refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from .errors import InvalidParamsError

ParamValue = int | float | str | bool

_TYPE_NAMES: dict[type, str] = {int: "int", float: "float", str: "str", bool: "bool"}


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: its type, default, and allowed range or choices.

    ``min``/``max`` are inclusive unless ``open_interval`` is set, in which case both
    bounds are excluded (e.g. a quantile in (0.5, 1)).
    """

    name: str
    type: type
    default: ParamValue
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    open_interval: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, as published by ``GET /v1/detectors``."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": _TYPE_NAMES[self.type],
            "default": self.default,
        }
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices is not None:
            out["choices"] = list(self.choices)
        out["description"] = self.description
        return out

    def check(self, value: object) -> ParamValue:
        """The value normalised to this parameter's type; ValueError says what is wrong."""
        coerced = _coerce(self.type, value)
        if coerced is None:
            raise ValueError(
                f"{self.name}: expected {_TYPE_NAMES[self.type]}, "
                f"got {type(value).__name__} {value!r}"
            )
        if self.choices is not None and coerced not in self.choices:
            raise ValueError(f"{self.name}: {coerced!r} is not one of {', '.join(self.choices)}")
        if isinstance(coerced, int | float) and not isinstance(coerced, bool):
            problem = self._range_problem(coerced)
            if problem:
                raise ValueError(f"{self.name}: {coerced!r} {problem}")
        return coerced

    def _range_problem(self, value: float) -> str | None:
        if self.open_interval:
            low_ok = self.min is None or value > self.min
            high_ok = self.max is None or value < self.max
            bounds = f"in the open interval ({self.min}, {self.max})"
        else:
            low_ok = self.min is None or value >= self.min
            high_ok = self.max is None or value <= self.max
            bounds = f"in [{self.min}, {self.max}]"
        return None if low_ok and high_ok else f"is out of range; must be {bounds}"


def _coerce(kind: type, value: object) -> ParamValue | None:
    # bool is an Integral subclass; True must never pass as n_estimators=1.
    if isinstance(value, bool):
        return value if kind is bool else None
    if kind is int:
        return int(value) if isinstance(value, Integral) else None
    if kind is float:
        if isinstance(value, Real) and math.isfinite(float(value)):
            return float(value)
        return None
    if kind is str:
        return value if isinstance(value, str) else None
    return None


def validate(
    specs: Iterable[ParamSpec], params: Mapping[str, object] | None, context: str
) -> dict[str, ParamValue]:
    """Check ``params`` against ``specs`` and return them with defaults filled in.

    Raises :class:`InvalidParamsError` listing every problem at once, each naming the
    valid parameters, so a client can fix a request in one round trip.
    """
    by_name = {spec.name: spec for spec in specs}
    valid = ", ".join(by_name)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidParamsError([f"{context}: parameters must be an object, got {params!r}"])
    errors: list[str] = []
    out: dict[str, ParamValue] = {}
    for key, value in params.items():
        spec = by_name.get(key) if isinstance(key, str) else None
        if spec is None:
            errors.append(f"unknown parameter {key!r} for {context}; valid parameters: {valid}")
            continue
        try:
            out[key] = spec.check(value)
        except ValueError as exc:
            errors.append(f"{context}: {exc}")
    if errors:
        raise InvalidParamsError(errors)
    return {name: out.get(name, spec.default) for name, spec in by_name.items()}


THRESHOLD_METHODS = ("quantile", "gamma")
# Default: empirical 0.99 quantile of held-out normal scores, i.e. ~1 % of normal windows
# flagged. Alerts fire on k-of-n anomalous windows, so 1 % per window rarely adds up to
# an alert by chance (3 of 10 independent windows: ~1e-4). The empirical quantile makes
# no assumption about the score distribution (multi-modal for machines with several
# operating modes); the gamma fit extrapolates the tail better when the held-out part is
# small (a few dozen windows) but is only as good as its fit.
DEFAULT_THRESHOLD_METHOD = "quantile"
DEFAULT_THRESHOLD_Q = 0.99

THRESHOLD_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "method",
        str,
        DEFAULT_THRESHOLD_METHOD,
        "How the threshold is fitted to scores of held-out normal windows: the empirical "
        "'quantile', or a location-shifted 'gamma' fit (falls back to quantile if it fails).",
        choices=THRESHOLD_METHODS,
    ),
    ParamSpec(
        "q",
        float,
        DEFAULT_THRESHOLD_Q,
        "Target quantile of normal scores, in the open interval (0.5, 1). 0.99 means about "
        "1% of normal windows score above the threshold.",
        min=0.5,
        max=1.0,
        open_interval=True,
    ),
)


def validate_threshold(threshold: Mapping[str, object] | None) -> dict[str, ParamValue]:
    """Validate a threshold config (``{"method": ..., "q": ...}``), filling defaults."""
    return validate(THRESHOLD_SPECS, threshold, "threshold")
