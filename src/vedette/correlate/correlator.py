"""The Correlator: Sigma correlation rules over a stream of base detections.

One implementation for ``vedette scan`` (detections in time order, flushed at the end) and the
monitoring centre (detections arriving continuously and slightly out of order). Arrivals wait
in a reorder buffer until the *watermark* (latest event time seen) minus the tolerance has
passed them, then reach the evaluators in event-time order. An arrival older than what was
already released is late: it is counted as a warning and not used. State is bounded by each
rule's timespan and by ``max_groups`` live groups over all rules; at the cap the least recently
updated group is evicted with a counted warning.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vedette.correlate.evaluator import Evaluator, datetime_to_micros
from vedette.correlate.references import (
    AliasFields,
    BaseRule,
    Target,
    base_rule_index,
    resolve,
)
from vedette.correlate.spec import CorrelationSpec, SpecError, spec_from_mapping, spec_from_sigma
from vedette.errors import RuleLoadError
from vedette.events import Detection

DEFAULT_MAX_GROUPS = 100_000
DEFAULT_TOLERANCE = timedelta(0)

_MICROSECOND = timedelta(microseconds=1)


@dataclass(slots=True, frozen=True)
class CorrelationWarning:
    """A counted problem met while correlating (late event, missing field, group cap)."""

    reason: str
    rule_id: str
    count: int
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"correlation {self.rule_id}: {self.reason} x{self.count}{detail}"


class Correlator:
    """Evaluates correlation rules over base detections; see ``docs/correlation.md``."""

    def __init__(
        self,
        correlations: Iterable[Any],
        base_rules: Iterable[Any] | Mapping[str, Any] = (),
        *,
        max_groups: int = DEFAULT_MAX_GROUPS,
        out_of_order_tolerance: timedelta | float = DEFAULT_TOLERANCE,
    ) -> None:
        if max_groups < 1:
            raise ValueError("max_groups must be at least 1")
        tolerance = (
            out_of_order_tolerance
            if isinstance(out_of_order_tolerance, timedelta)
            else timedelta(seconds=out_of_order_tolerance)
        )
        self.max_groups = max_groups
        self.tolerance = tolerance // _MICROSECOND
        self.load_errors: list[RuleLoadError] = []
        self._warnings: dict[tuple[str, str], list[Any]] = {}
        self.stats: dict[str, int] = {"received": 0, "used": 0, "fired": 0, "output": 0}

        specs = [spec for spec in map(self._to_spec, correlations) if spec is not None]
        resolution = resolve(specs, base_rule_index(base_rules))
        for spec, reason in resolution.failed:
            self._load_error(spec, reason)
        self._build(resolution.specs, resolution.targets, resolution.aliases)

        self._heap: list[tuple[int, int, Detection, list[tuple[Evaluator, int]]]] = []
        self._seq = 0
        self._watermark: int | None = None
        self._released: int | None = None

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_engine(
        cls,
        engine: Any,
        *,
        max_groups: int = DEFAULT_MAX_GROUPS,
        out_of_order_tolerance: timedelta | float = DEFAULT_TOLERANCE,
    ) -> Correlator:
        """A correlator for the correlation rules an engine loaded (``vedette.detect.Engine``).

        Uses ``engine.correlation_rules`` (pySigma objects, or YAML mappings for what pySigma
        refused) and the engine's base rules (``engine.rules``: objects with ``id`` and
        ``name``) to resolve references by id and by name.
        """
        correlations = list(getattr(engine, "correlation_rules", ()) or ())
        base = getattr(engine, "rules", ()) or ()
        return cls(
            correlations,
            base,
            max_groups=max_groups,
            out_of_order_tolerance=out_of_order_tolerance,
        )

    def _to_spec(self, rule: Any) -> CorrelationSpec | None:
        try:
            if isinstance(rule, CorrelationSpec):
                return rule
            if isinstance(rule, Mapping):
                return spec_from_mapping(rule, path=str(rule.get("__path__", "<memory>")))
            return spec_from_sigma(rule)
        except Exception as error:  # the boundary: a rule object we cannot read is a load error
            reason = str(error) if isinstance(error, SpecError) else f"unreadable rule ({error!r})"
            if isinstance(rule, Mapping):
                path, title, rule_id = rule.get("__path__"), rule.get("title"), rule.get("id")
            else:
                source = getattr(rule, "source", None)
                path = getattr(source, "path", None) if source is not None else None
                title, rule_id = getattr(rule, "title", None), getattr(rule, "id", None)
            self.load_errors.append(
                RuleLoadError(
                    path=str(path) if path is not None else "<memory>",
                    reason=f"correlation cannot be honoured: {reason}",
                    rule_id=str(rule_id) if rule_id is not None else None,
                    title=str(title) if title is not None else None,
                )
            )
            return None

    def _load_error(self, spec: CorrelationSpec, reason: str) -> None:
        self.load_errors.append(
            RuleLoadError(
                path=spec.path,
                line=spec.line,
                reason=f"correlation cannot be honoured: {reason}",
                rule_id=spec.id,
                title=spec.title,
            )
        )

    def _build(
        self,
        specs: list[CorrelationSpec],
        targets: list[list[Target]],
        aliases: list[AliasFields],
    ) -> None:
        referrers: list[list[int]] = [[] for _ in specs]
        for outer, row in enumerate(targets):
            for target in row:
                if target.correlation is not None:
                    referrers[target.correlation].append(outer)
        base_referrers: dict[str, list[int]] = {}
        base_rules: dict[str, BaseRule] = {}
        for outer, row in enumerate(targets):
            for target in row:
                if target.base is not None:
                    base_referrers.setdefault(target.base.rule_id, []).append(outer)
                    base_rules[target.base.rule_id] = target.base

        self.evaluators: list[Evaluator] = []
        for position, spec in enumerate(specs):
            rule_ids = tuple(
                t.base.rule_id if t.base is not None else specs[t.correlation or 0].key
                for t in targets[position]
            )
            # Generate: a referenced rule is output only if a referring correlation says so.
            output = not referrers[position] or any(
                specs[outer].generate for outer in referrers[position]
            )
            self.evaluators.append(
                Evaluator(spec, rule_ids, output=output, warn=self._warn, aliases=aliases[position])
            )

        self._by_id: dict[str, list[tuple[Evaluator, int]]] = {}
        self._by_name: dict[str, list[tuple[Evaluator, int]]] = {}
        self._chained: dict[int, list[tuple[Evaluator, int]]] = {}
        for position, row in enumerate(targets):
            evaluator = self.evaluators[position]
            for index, target in enumerate(row):
                if target.correlation is not None:
                    self._chained.setdefault(target.correlation, []).append((evaluator, index))
                elif target.base is not None:
                    self._by_id.setdefault(target.base.rule_id.lower(), []).append(
                        (evaluator, index)
                    )
                    if target.base.name:
                        self._by_name.setdefault(target.base.name, []).append((evaluator, index))
        self._index_of = {id(evaluator): i for i, evaluator in enumerate(self.evaluators)}
        # Windows are judged inner correlations first, so that what an inner one emits when
        # its window closes still reaches the outer one before that one's windows are judged.
        self._inner_first = [self.evaluators[i] for i in _inner_first(targets)]

        suppressed: set[str] = set()
        for rule_id, outers in base_referrers.items():
            if not any(specs[outer].generate for outer in outers):
                suppressed.add(rule_id)
                name = base_rules[rule_id].name
                if name:
                    suppressed.add(name)
        self.referenced_rule_ids: frozenset[str] = frozenset(base_referrers)
        """Ids of the base rules some correlation refers to (they must run for it)."""
        self.suppressed_rule_ids: frozenset[str] = frozenset(suppressed)
        """Ids (and names) of base rules whose own detections are not output (``generate``)."""

    # -- public API -----------------------------------------------------------------------

    @property
    def rules(self) -> list[CorrelationSpec]:
        """The correlation rules that loaded and run."""
        return [evaluator.spec for evaluator in self.evaluators]

    @property
    def warnings(self) -> list[CorrelationWarning]:
        """Counted problems so far, one entry per (reason, rule)."""
        return [
            CorrelationWarning(reason, rule_id, count, detail)
            for (reason, rule_id), (count, detail) in sorted(self._warnings.items())
        ]

    @property
    def live_groups(self) -> int:
        """Groups currently held over all rules."""
        return sum(len(evaluator.groups) for evaluator in self.evaluators)

    def process(self, detections: Sequence[Detection]) -> list[Detection]:
        """Feed base detections; return the correlation detections they completed."""
        fired: list[Detection] = []
        for detection in detections:
            self.stats["received"] += 1
            routes = self._routes(detection)
            if not routes:
                continue
            when = detection.event.timestamp
            if when is None:
                self._warn("undated-event", detection.rule_id, "detection without event time")
                continue
            time = datetime_to_micros(when)
            if self._watermark is not None and time < self._watermark - self.tolerance:
                self._warn("late-event", detection.rule_id, "older than watermark - tolerance")
                continue
            heapq.heappush(self._heap, (time, self._seq, detection, routes))
            self._seq += 1
            if self._watermark is None or time > self._watermark:
                self._watermark = time
        if self._watermark is not None:
            self._release(self._watermark - self.tolerance, fired)
        return self._outputs(fired)

    def advance(self, now: datetime) -> list[Detection]:
        """Move event time to ``now`` without a detection (a heartbeat for quiet streams).

        Releases what waited in the reorder buffer up to ``now`` minus the tolerance and judges
        the windows complete by then; the monitoring centre calls it on a timer with the time
        its sources have reached, so that closing windows do not wait for the next detection.
        """
        fired: list[Detection] = []
        time = datetime_to_micros(now)
        if self._watermark is None or time > self._watermark:
            self._watermark = time
        until = self._watermark - self.tolerance
        self._release(until, fired)
        if self._released is None or until > self._released:
            self._released = until
            for evaluator in self._inner_first:
                for found in evaluator.expire(until):
                    self._emit(evaluator, found, fired)
        return self._outputs(fired)

    def flush(self) -> list[Detection]:
        """End of input: release everything buffered and judge every open window."""
        fired: list[Detection] = []
        if self._heap:
            self._release(max(entry[0] for entry in self._heap), fired)
        for evaluator in self._inner_first:
            for found in evaluator.flush():
                self._emit(evaluator, found, fired)
        self._heap.clear()
        return self._outputs(fired)

    # -- internals ------------------------------------------------------------------------

    def _routes(self, detection: Detection) -> list[tuple[Evaluator, int]] | None:
        if detection.kind != "sigma":
            return None
        routes = self._by_id.get(detection.rule_id.lower())
        if routes is None and detection.rule_name:
            routes = self._by_name.get(detection.rule_name)
        return routes

    def _release(self, until: int, fired: list[Detection]) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            time, _, detection, routes = heapq.heappop(heap)
            self._released = time
            for evaluator, rule in routes:
                self._feed(evaluator, rule, detection, time, fired)
            self.stats["used"] += 1
        if self._released is not None:
            for evaluator in self._inner_first:
                for found in evaluator.expire(self._released):
                    self._emit(evaluator, found, fired)

    def _feed(
        self,
        evaluator: Evaluator,
        rule: int,
        detection: Detection,
        time: int,
        fired: list[Detection],
    ) -> None:
        key = evaluator.group_key(detection, rule)
        if key is None:
            return
        if evaluator.measure.needs_value:
            ok, value = evaluator.value_of(detection, rule)
            if not ok:
                return
        else:
            value = None
        groups = evaluator.groups
        group = groups.get(key)
        if group is not None:
            groups.move_to_end(key)
        else:
            if self.live_groups >= self.max_groups:
                self._evict_oldest()
            group = evaluator.create(key)
        found = evaluator.add(group, detection, rule, value, time)
        if found is not None:
            self._emit(evaluator, found, fired)

    def _emit(self, evaluator: Evaluator, found: Detection, fired: list[Detection]) -> None:
        """Record a firing: output it if wanted, and feed the correlations chained on it."""
        self.stats["fired"] += 1
        if evaluator.output:
            fired.append(found)
        when = found.event.timestamp
        time = datetime_to_micros(when) if when is not None else (self._released or 0)
        for outer, rule in self._chained.get(self._index_of[id(evaluator)], ()):
            self._feed(outer, rule, found, time, fired)

    def _evict_oldest(self) -> None:
        oldest: tuple[int, Evaluator, Any] | None = None
        for evaluator in self.evaluators:
            candidate = evaluator.oldest()
            if candidate is not None and (oldest is None or candidate[0] < oldest[0]):
                oldest = (candidate[0], evaluator, candidate[1])
        if oldest is None:
            return
        _, evaluator, key = oldest
        del evaluator.groups[key]
        self._warn("group-cap", evaluator.spec.key, f"max_groups={self.max_groups} reached")

    def _warn(self, reason: str, rule_id: str, detail: str) -> None:
        slot = self._warnings.get((reason, rule_id))
        if slot is None:
            self._warnings[(reason, rule_id)] = [1, detail]
        else:
            slot[0] += 1

    def _outputs(self, fired: list[Detection]) -> list[Detection]:
        self.stats["output"] += len(fired)
        return fired


def _inner_first(targets: list[list[Target]]) -> list[int]:
    """Correlation indexes ordered so that every referenced correlation precedes its users."""
    order: list[int] = []
    placed: set[int] = set()

    def place(node: int) -> None:
        if node in placed:
            return
        placed.add(node)  # resolution already rejected cycles
        for target in targets[node]:
            if target.correlation is not None:
                place(target.correlation)
        order.append(node)

    for node in range(len(targets)):
        place(node)
    return order
