"""The threshold of a correlation: one or more bounds joined by AND.

Sigma writes a condition as a map of operators (``gte: 10``); a range is two operators in the
same map (``gt: 100`` and ``lte: 200``: "101 to 200"). pySigma keeps one operator only, so
Vedette keeps its own small model and builds it from either source.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Number = int | float

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}
"""Sigma condition operators, by their YAML key."""

LOWER_BOUNDS = frozenset({"gt", "gte"})
"""Operators that only ever become true as a count grows: they can fire on crossing."""


class ConditionError(ValueError):
    """A condition map that cannot be honoured (the reason is the message)."""


@dataclass(slots=True, frozen=True)
class Bound:
    """One comparison of the measured value with a threshold (``gte 10``)."""

    op: str
    threshold: Number

    def holds(self, value: Number) -> bool:
        """True when ``value`` satisfies this bound."""
        return OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold}"


@dataclass(slots=True, frozen=True)
class Threshold:
    """All bounds of a condition; the condition holds when every bound holds."""

    bounds: tuple[Bound, ...]

    def holds(self, value: Number) -> bool:
        """True when ``value`` satisfies every bound."""
        return all(bound.holds(value) for bound in self.bounds)

    def compile(self) -> Callable[[Number], bool]:
        """A fast ``holds`` for the hot path (one closure, no loop for a single bound)."""
        checks = tuple((OPERATORS[bound.op], bound.threshold) for bound in self.bounds)
        if len(checks) == 1:
            compare, threshold = checks[0]
            return lambda value: compare(value, threshold)
        return lambda value: all(compare(value, threshold) for compare, threshold in checks)

    @property
    def lower_only(self) -> bool:
        """True when the condition only has lower bounds (gt/gte), i.e. is monotone."""
        return all(bound.op in LOWER_BOUNDS for bound in self.bounds)

    def to_dict(self) -> dict[str, Number]:
        """The condition as Sigma writes it (``{"gte": 10}``)."""
        return {bound.op: bound.threshold for bound in self.bounds}

    def __str__(self) -> str:
        return " and ".join(str(bound) for bound in self.bounds)

    @classmethod
    def from_mapping(cls, condition: Mapping[str, Any]) -> Threshold:
        """Bounds from a condition map; ``field`` and ``percentile`` keys are ignored here."""
        bounds: list[Bound] = []
        for key, raw in condition.items():
            if key in ("field", "percentile"):
                continue
            if key not in OPERATORS:
                raise ConditionError(f"unknown condition operator {key!r}")
            bounds.append(Bound(key, _number(key, raw)))
        if not bounds:
            raise ConditionError("condition has no operator (gt, gte, lt, lte, eq, neq)")
        return cls(tuple(bounds))


def _number(key: str, raw: Any) -> Number:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ConditionError(f"condition {key}: {raw!r} is not a number")
    try:
        value: Number = int(raw) if isinstance(raw, int) else float(raw)
    except ValueError:
        raise ConditionError(f"condition {key}: {raw!r} is not a number") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value
