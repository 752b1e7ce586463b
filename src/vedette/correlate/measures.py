"""What each correlation type measures over the events of one group's window.

One class per Sigma correlation type, registered in :data:`MEASURES`. A measure that can be
kept up to date as events enter and leave a sliding window (``incremental``) supports the
trailing evaluation (fire as soon as the threshold is crossed); the statistics over a window's
whole population (average, median, percentile) are computed when the window closes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from vedette.correlate.condition import Number
from vedette.correlate.expression import Predicate, compile_expression
from vedette.correlate.spec import CorrelationSpec
from vedette.events import SourceRef


class Entry(NamedTuple):
    """One base (or inner correlation) detection inside a group's window.

    A group's entries are in time order, and in arrival order for equal times.
    """

    time: int
    """Event time in microseconds since the epoch."""
    rule: int
    """Index of the referenced rule in the correlation's ``rules``."""
    value: Any
    """The measured field's value (value types), else None."""
    source: SourceRef | None


@dataclass(slots=True)
class Tally:
    """Incremental part of a group's measure: counts by key and a running total."""

    counts: dict[Any, int] = field(default_factory=dict)
    total: Number = 0

    def add_key(self, key: Any) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def remove_key(self, key: Any) -> None:
        left = self.counts[key] - 1
        if left:
            self.counts[key] = left
        else:
            del self.counts[key]


class Measure:
    """Base class: the value a correlation type compares with its threshold."""

    incremental: ClassVar[bool] = False
    needs_value: ClassVar[bool] = False
    uses_tally: ClassVar[bool] = True
    """False when the measure needs only the window's entries (no per-group counters)."""

    def __init__(self, spec: CorrelationSpec) -> None:
        self.spec = spec

    def add(self, tally: Tally, entry: Entry) -> None:
        """Account for ``entry`` entering the window."""

    def remove(self, tally: Tally, entry: Entry) -> None:
        """Account for ``entry`` leaving the window."""

    def current(self, tally: Tally, entries: Sequence[Entry]) -> Number:
        """The measure of the window now (incremental measures)."""
        return self.over(entries)

    def over(self, entries: Sequence[Entry]) -> Number:
        """The measure of a complete window."""
        raise NotImplementedError


class EventCount(Measure):
    """``event_count``: how many events."""

    incremental = True
    uses_tally = False

    def current(self, tally: Tally, entries: Sequence[Entry]) -> Number:
        return len(entries)

    def over(self, entries: Sequence[Entry]) -> Number:
        return len(entries)


class ValueCount(Measure):
    """``value_count``: how many distinct values of ``condition.field``."""

    incremental = True
    needs_value = True

    def add(self, tally: Tally, entry: Entry) -> None:
        tally.add_key(entry.value)

    def remove(self, tally: Tally, entry: Entry) -> None:
        tally.remove_key(entry.value)

    def current(self, tally: Tally, entries: Sequence[Entry]) -> Number:
        return len(tally.counts)

    def over(self, entries: Sequence[Entry]) -> Number:
        return len({entry.value for entry in entries})


class Temporal(Measure):
    """``temporal``: how many of the referenced rules fired (or the expression, as 0/1)."""

    incremental = True

    def __init__(self, spec: CorrelationSpec) -> None:
        super().__init__(spec)
        self.predicate: Predicate | None = (
            compile_expression(spec.expression) if spec.expression is not None else None
        )

    def add(self, tally: Tally, entry: Entry) -> None:
        tally.add_key(entry.rule)

    def remove(self, tally: Tally, entry: Entry) -> None:
        tally.remove_key(entry.rule)

    def current(self, tally: Tally, entries: Sequence[Entry]) -> Number:
        return self._measure(set(tally.counts))

    def over(self, entries: Sequence[Entry]) -> Number:
        return self._measure({entry.rule for entry in entries})

    def _measure(self, seen: set[int]) -> Number:
        if self.predicate is None:
            return len(seen)
        return int(self.predicate({self.spec.rules[index] for index in seen}))


class TemporalOrdered(Measure):
    """``temporal_ordered``: length of the longest prefix of ``rules`` seen in that order.

    Entries are in (time, arrival) order; the earliest-match greedy walk finds the longest
    prefix, so "A then B then C" counts 3 only when an A precedes a B that precedes a C.
    """

    incremental = True

    def __init__(self, spec: CorrelationSpec) -> None:
        super().__init__(spec)
        self._holds = spec.threshold.compile()

    def add(self, tally: Tally, entry: Entry) -> None:
        tally.add_key(entry.rule)

    def remove(self, tally: Tally, entry: Entry) -> None:
        tally.remove_key(entry.rule)

    def current(self, tally: Tally, entries: Sequence[Entry]) -> Number:
        # The ordered prefix can never exceed the number of distinct rules seen: when even
        # that upper bound misses a (lower-bound) threshold, skip the walk over the window.
        distinct = len(tally.counts)
        if not self._holds(distinct):
            return distinct
        return self.over(entries)

    def over(self, entries: Sequence[Entry]) -> Number:
        wanted = 0
        rules = len(self.spec.rules)
        for entry in entries:
            if entry.rule == wanted:
                wanted += 1
                if wanted == rules:
                    break
        return wanted


class ValueSum(Measure):
    """``value_sum``: sum of ``condition.field``."""

    incremental = True
    needs_value = True

    def add(self, tally: Tally, entry: Entry) -> None:
        tally.total += entry.value

    def remove(self, tally: Tally, entry: Entry) -> None:
        tally.total -= entry.value

    def current(self, tally: Tally, entries: Sequence[Entry]) -> Number:
        return tally.total if entries else 0

    def over(self, entries: Sequence[Entry]) -> Number:
        values: list[Number] = [entry.value for entry in entries]
        if all(isinstance(value, int) for value in values):
            return sum(values)
        return math.fsum(values)


class ValueAvg(Measure):
    """``value_avg``: arithmetic mean of ``condition.field``."""

    needs_value = True
    uses_tally = False

    def over(self, entries: Sequence[Entry]) -> Number:
        if not entries:
            return 0
        return math.fsum(entry.value for entry in entries) / len(entries)


class ValuePercentile(Measure):
    """``value_percentile``: the ``condition.percentile``-th percentile (linear interpolation)."""

    needs_value = True
    uses_tally = False

    def over(self, entries: Sequence[Entry]) -> Number:
        percentile = self.spec.percentile if self.spec.percentile is not None else 50.0
        return percentile_of(sorted(entry.value for entry in entries), percentile)


class ValueMedian(Measure):
    """``value_median``: the median of ``condition.field`` (mean of the middle two when even)."""

    needs_value = True
    uses_tally = False

    def over(self, entries: Sequence[Entry]) -> Number:
        return percentile_of(sorted(entry.value for entry in entries), 50.0)


def percentile_of(ordered: Sequence[Number], percentile: float) -> Number:
    """Percentile of sorted values, linear between closest ranks (numpy's default method)."""
    if not ordered:
        return 0
    rank = (len(ordered) - 1) * percentile / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


MEASURES: dict[str, type[Measure]] = {
    "event_count": EventCount,
    "value_count": ValueCount,
    "temporal": Temporal,
    "temporal_ordered": TemporalOrdered,
    "value_sum": ValueSum,
    "value_avg": ValueAvg,
    "value_percentile": ValuePercentile,
    "value_median": ValueMedian,
}
"""Measure class for each correlation type."""
