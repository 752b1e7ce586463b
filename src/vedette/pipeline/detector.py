"""The Detector: Sigma engine, indicator index, correlator and ATT&CK enrichment as one stage.

Matching (engine + indicators) is per event batch and runs in the worker processes;
correlation needs every base detection in time order and runs once, in the parent; ATT&CK
enrichment only touches what is output. The parts are typed by small protocols so tests can
use in-memory fakes and the monitoring centre can reuse the same stage.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vedette.events import Detection, Event


class Matcher(Protocol):
    """Anything that turns a batch of events into detections (engine, indicator index)."""

    def match(self, events: Sequence[Event]) -> list[Detection]:
        """Detections for ``events``."""
        ...


class Correlator(Protocol):
    """Sigma correlation over base detections that arrive in time order."""

    def process(self, detections: Sequence[Detection]) -> list[Detection]:
        """Correlation detections completed by ``detections``."""
        ...

    def flush(self) -> list[Detection]:
        """Correlation detections still pending at the end of the input."""
        ...

    @property
    def warnings(self) -> Sequence[object]:
        """Counted problems (late events, missing group-by fields, the group cap)."""
        ...


class Enricher(Protocol):
    """Fills ATT&CK names and tactics into detections (``AttackKB``)."""

    def enrich(self, detections: list[Detection]) -> Any:
        """Enrich in place, or return the enriched detections."""
        ...


_CORRELATION_CHUNK = 1000


@dataclass(slots=True)
class Detector:
    """Engine + indicator index (per batch) + correlator (whole stream) + ATT&CK enrichment."""

    engine: Matcher | None = None
    indicators: Matcher | None = None
    correlator: Correlator | None = None
    attack_kb: Enricher | None = None
    suppressed_rule_ids: frozenset[str] = field(default_factory=frozenset)

    def match(self, events: Sequence[Event]) -> list[Detection]:
        """Rule and indicator detections for one batch of events (worker side)."""
        found: list[Detection] = []
        if self.engine is not None:
            found.extend(self.engine.match(events))
        if self.indicators is not None:
            found.extend(self.indicators.match(events))
        return found

    def for_worker(self) -> Detector:
        """The part a worker process needs: what matches events, nothing stateful."""
        return Detector(engine=self.engine, indicators=self.indicators)

    def correlate(self, ordered: Iterable[Detection]) -> Iterator[Detection]:
        """Base detections (time order) in; base detections to show plus correlations out.

        The correlator sees every base detection; a base rule whose correlation says
        ``generate: false`` is kept out of the output. Correlation detections come out when
        they complete, so their order is not guaranteed: the caller sorts the output.
        """
        correlator = self.correlator
        suppressed = self.suppressed_rule_ids
        for chunk in chunked(ordered, _CORRELATION_CHUNK):
            if correlator is not None:
                yield from correlator.process(chunk)
            for detection in chunk:
                if not suppressed or not _is_suppressed(detection, suppressed):
                    yield detection
        if correlator is not None:
            yield from correlator.flush()

    def enrich(self, detections: list[Detection]) -> list[Detection]:
        """ATT&CK names and tactics for ``detections`` (unchanged without a knowledge base)."""
        if self.attack_kb is None or not detections:
            return detections
        result = self.attack_kb.enrich(detections)
        return detections if result is None else list(result)


def _is_suppressed(detection: Detection, suppressed: frozenset[str]) -> bool:
    if detection.kind != "sigma":
        return False
    return detection.rule_id in suppressed or (detection.rule_name or "") in suppressed


def chunked(items: Iterable[Detection], size: int) -> Iterator[list[Detection]]:
    """Consecutive lists of at most ``size`` detections."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
