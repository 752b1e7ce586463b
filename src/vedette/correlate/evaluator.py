"""One correlation rule at work: its groups, their windows, and when it fires.

Detections reach an evaluator in event-time order (the :class:`Correlator` reorders them).
Two ways of evaluating, chosen once per rule (see ``docs/correlation.md``):

* **trailing** (the threshold only has lower bounds and the measure grows with the window:
  ``event_count``, ``value_count``, ``temporal``, ``temporal_ordered``, ``value_sum``): every
  arrival is the end of a sliding window ``[t - timespan, t]``; the rule fires the moment the
  threshold is crossed. A group that fired stays silent until an event arrives more than one
  timespan after the firing event, so one burst gives one alert and no event is reported twice.
* **closing** (an upper bound such as ``lt``/``eq``/``neq``, or a statistic over the whole
  window: ``value_avg``, ``value_median``, ``value_percentile``): a window opens at a group's
  first event, covers ``[start, start + timespan]``, and is judged once it is complete.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vedette.correlate.expression import has_negation
from vedette.correlate.measures import MEASURES, Entry, Tally
from vedette.correlate.spec import CorrelationSpec
from vedette.events import LEVELS, Detection, SourceRef, level_rank

GroupKey = tuple[Any, ...]

MAX_EVENT_REFS = 100
"""Contributing events listed in a correlation detection (the count is always complete)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_UNUSED_TALLY = Tally()
"""Stands in for the counters of measures with ``uses_tally = False`` (never written to)."""
_LEVEL_RANK = {name: level_rank(name) for name in LEVELS}


def micros_to_datetime(micros: int) -> datetime:
    """Aware UTC datetime of microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def datetime_to_micros(when: datetime) -> int:
    """Microseconds since the epoch of ``when`` (a naive datetime is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICROSECOND


@dataclass(slots=True)
class Group:
    """State of one group (one combination of group-by values) of one correlation."""

    key: GroupKey
    entries: list[Entry] = field(default_factory=list)
    tally: Tally | None = None
    """Counters of an incremental measure (None for measures that need none)."""
    last_time: int = 0
    latched_until: int | None = None
    """Trailing: no new alert until an event later than this (firing time + timespan)."""
    start: int | None = None
    """Closing: start of the open window."""
    last: Detection | None = None
    """Closing: the latest detection in the open window (the alert's event if it fires)."""
    level: int = -1
    """Highest level rank seen (the fallback level of a rule without one)."""


Warn = Callable[[str, str, str], None]
"""Callback for a counted warning: (reason, rule key, detail)."""


class Evaluator:
    """Windows and firing for one correlation rule; bounded by its timespan."""

    def __init__(
        self,
        spec: CorrelationSpec,
        rule_ids: tuple[str, ...],
        *,
        output: bool,
        warn: Warn,
        aliases: Mapping[str, Mapping[int, str]] | None = None,
    ) -> None:
        self.spec = spec
        self.rule_ids = rule_ids
        """The detection rule id of each referenced rule, by index in ``spec.rules``."""
        self.output = output
        self.measure = MEASURES[spec.type](spec)
        # Tokenised, not split on spaces: `a and not(b)` must be judged on its complete window.
        negated = spec.expression is not None and has_negation(spec.expression)
        self.trailing = self.measure.incremental and spec.threshold.lower_only and not negated
        self.span = spec.timespan_seconds * 1_000_000
        self._holds = spec.threshold.compile()
        self.groups: OrderedDict[GroupKey, Group] = OrderedDict()
        self._closing: list[tuple[int, int, GroupKey, int]] = []
        """Open closing windows: (end, tie-breaker, group key, start); keys never compare."""
        self._opened = itertools.count()
        self._warn = warn

        def field_of(name: str, index: int) -> str:
            # an alias names, per rule, the event field that holds it; otherwise the name is
            # the field itself
            return (aliases or {}).get(name, {}).get(index, name)

        self._fields = [
            tuple(field_of(name, index) for name in spec.group_by)
            for index in range(len(spec.rules))
        ]
        self._value_fields = [
            tuple(field_of(name, index) for name in spec.value_field)
            for index in range(len(spec.rules))
        ]
        self._numeric = spec.type in ("value_sum", "value_avg", "value_percentile", "value_median")

    # -- input ---------------------------------------------------------------------------

    def group_key(self, detection: Detection, rule: int) -> GroupKey | None:
        """Group-by values of ``detection`` and its unit (None, with a counted warning, when a
        group-by field is missing)."""
        names = self._fields[rule]
        unit = detection.event.unit  # groups never span units: each unit sees only its own
        if not names:
            return (unit,)
        fields = detection.event.fields
        plain = detection.kind != "correlation"
        values = []
        for name in names:
            value = fields.get(name) if plain else None
            if value is None:
                value = _lookup(detection, name)
                if value is None:
                    self._warn("missing-group-field", self.spec.key, name)
                    return None
            if value.__class__ is list or value.__class__ is dict:
                value = _hashable(value)
            values.append(value)
        values.append(unit)
        return tuple(values)

    def value_of(self, detection: Detection, rule: int) -> tuple[bool, Any]:
        """The measured value of ``detection`` (``(False, None)`` with a warning if unusable)."""
        if not self.measure.needs_value:
            return True, None
        names = self._value_fields[rule]
        values = []
        for name in names:
            value = _lookup(detection, name)
            if value is None:
                self._warn("missing-value-field", self.spec.key, name)
                return False, None
            values.append(_hashable(value))
        if not self._numeric:
            return True, values[0] if len(values) == 1 else tuple(values)
        number = _to_number(values[0])
        if number is None:
            self._warn("non-numeric-value", self.spec.key, f"{names[0]}={values[0]!r}")
            return False, None
        return True, number

    def add(
        self, group: Group, detection: Detection, rule: int, value: Any, time: int
    ) -> Detection | None:
        """Put one detection in its group's window; the correlation detection if it fires."""
        entry = Entry(time, rule, value, detection.event.source)
        rank = _LEVEL_RANK.get(detection.level)
        if rank is None:
            rank = level_rank(detection.level)
        if rank > group.level:
            group.level = rank
        if self.trailing:
            return self._add_trailing(group, entry, detection)
        return self._add_closing(group, entry, detection)

    def create(self, key: GroupKey) -> Group:
        """A new, most recently used group."""
        group = Group(key, tally=Tally() if self.measure.uses_tally else None)
        self.groups[key] = group
        return group

    # -- trailing windows -----------------------------------------------------------------

    def _add_trailing(self, group: Group, entry: Entry, detection: Detection) -> Detection | None:
        entries = group.entries
        if not entries or entries[-1].time <= entry.time:  # arrival order breaks time ties
            entries.append(entry)
        else:  # an inner correlation completed late: keep (time, arrival) order
            position = len(entries)
            while position and entries[position - 1].time > entry.time:
                position -= 1
            entries.insert(position, entry)
        now = max(group.last_time, entry.time)
        group.last_time = now
        horizon = now - self.span
        if entry.time < horizon:
            entries.remove(entry)
            return None
        tally = group.tally or _UNUSED_TALLY
        self.measure.add(tally, entry)
        stale = 0
        while entries[stale].time < horizon:
            self.measure.remove(tally, entries[stale])
            stale += 1
        if stale:
            del entries[:stale]
        if group.latched_until is not None:
            if now <= group.latched_until:
                return None
            group.latched_until = None
        value = self.measure.current(tally, entries)
        if not self._holds(value):
            return None
        group.latched_until = now + self.span
        # The arriving detection completed the condition: it is the alert's event. Trailing
        # groups keep no event of their own, only (time, rule, value, source) entries.
        return self._detection(group, entries, value, horizon, now, detection)

    # -- closing windows ------------------------------------------------------------------

    def _add_closing(self, group: Group, entry: Entry, detection: Detection) -> Detection | None:
        fired: Detection | None = None
        if group.start is not None and entry.time > group.start + self.span:
            fired = self._close(group)
        if group.start is None:
            group.start = entry.time
            window = (entry.time + self.span, next(self._opened), group.key, entry.time)
            heapq.heappush(self._closing, window)
        group.entries.append(entry)
        group.last_time = max(group.last_time, entry.time)
        group.last = detection
        return fired

    def _close(self, group: Group) -> Detection | None:
        """Judge the open window of ``group`` and empty it."""
        entries = group.entries
        start = group.start
        group.entries = []
        group.start = None
        if not entries or start is None:
            return None
        value = self.measure.over(entries)
        if not self._holds(value):
            return None
        assert group.last is not None  # a window is never judged before a detection entered it
        return self._detection(group, entries, value, start, start + self.span, group.last)

    # -- time passing ---------------------------------------------------------------------

    def expire(self, now: int) -> list[Detection]:
        """Judge windows complete at ``now`` and drop groups with nothing left in the window."""
        fired: list[Detection] = []
        closing = self._closing
        while closing and closing[0][0] < now:
            _, _, key, start = heapq.heappop(closing)
            group = self.groups.get(key)
            if group is not None and group.start == start:
                found = self._close(group)
                if found is not None:
                    fired.append(found)
        groups = self.groups
        while groups:
            key, group = next(iter(groups.items()))
            if group.last_time + self.span >= now or group.start is not None:
                break
            del groups[key]
        return fired

    def flush(self) -> list[Detection]:
        """End of input: judge every open window and forget every group."""
        fired: list[Detection] = []
        if not self.trailing:
            for group in self.groups.values():
                found = self._close(group)
                if found is not None:
                    fired.append(found)
        self.groups.clear()
        self._closing.clear()
        return fired

    def oldest(self) -> tuple[int, GroupKey] | None:
        """Last-update time and key of the least recently updated group."""
        if not self.groups:
            return None
        key, group = next(iter(self.groups.items()))
        return group.last_time, key

    # -- output ---------------------------------------------------------------------------

    def _detection(
        self,
        group: Group,
        entries: list[Entry],
        value: Any,
        start: int,
        end: int,
        completing: Detection,
    ) -> Detection:
        spec = self.spec
        seen = sorted({entry.rule for entry in entries})
        level = spec.level or (LEVELS[group.level] if group.level >= 0 else "medium")
        extra: dict[str, Any] = {
            "correlation_type": spec.type,
            "group_by": dict(zip(spec.group_by, group.key[:-1], strict=True)),
            "window_start": micros_to_datetime(start),
            "window_end": micros_to_datetime(end),
            "timespan": spec.timespan,
            "value": value,
            "condition": spec.threshold.to_dict(),
            "first_seen": micros_to_datetime(entries[0].time),
            "last_seen": micros_to_datetime(entries[-1].time),
            "event_count": len(entries),
            "events": [
                {
                    "rule_id": self.rule_ids[entry.rule],
                    "timestamp": micros_to_datetime(entry.time),
                    "source": _source_dict(entry.source),
                }
                for entry in entries[:MAX_EVENT_REFS]
            ],
        }
        if spec.value_field:
            extra["field"] = list(spec.value_field)
        if spec.percentile is not None:
            extra["percentile"] = spec.percentile
        if spec.expression is not None:
            extra["expression"] = spec.expression
        return Detection(
            rule_id=spec.key,
            rule_title=spec.title,
            level=level,
            event=completing.event,
            status=spec.status,
            tags=spec.tags,
            attack=spec.attack,
            matched=tuple(spec.rules[index] for index in seen),
            kind="correlation",
            rule_name=spec.name,
            rule_path=spec.path,
            extra=extra,
        )


def _source_dict(source: SourceRef | None) -> dict[str, Any] | None:
    """A contributing event's place as plain data (what every output format can write)."""
    if source is None:
        return None
    place: dict[str, Any] = {"path": source.path, "format": source.format}
    for name in ("record_id", "line", "offset"):
        value = getattr(source, name)
        if value is not None:
            place[name] = value
    return place


def _lookup(detection: Detection, name: str) -> Any:
    """A field of the detection: an inner correlation's group-by value, else the event's."""
    if detection.kind == "correlation":
        grouped = detection.extra.get("group_by")
        if isinstance(grouped, Mapping) and name in grouped:
            return grouped[name]
    fields = detection.event.fields
    value = fields.get(name)
    if value is None and name == "host":
        return detection.event.host
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value


def _to_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 0) if text[:2].lower() == "0x" else int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
