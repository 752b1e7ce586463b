"""Helpers for correlation tests: detections built in memory, rules inline as YAML."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from vedette.correlate import Correlator, load_yaml_rules
from vedette.events import Detection, Event, SourceRef

T0 = datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC)


class Factory:
    """Builds base detections at offsets from T0 and correlators from inline YAML."""

    def __init__(self) -> None:
        self._line = itertools.count(1)

    def det(self, rule: str, at: float, level: str = "low", **fields: Any) -> Detection:
        """A base detection of ``rule`` at ``at`` seconds after T0."""
        line = next(self._line)
        event = Event(
            fields=dict(fields),
            timestamp=T0 + timedelta(seconds=at),
            source=SourceRef("test.log", "jsonl", line=line),
        )
        return Detection(rule_id=rule, rule_title=rule, level=level, event=event, rule_name=rule)

    def correlator(self, text: str, **options: Any) -> Correlator:
        """A correlator for the correlation and base rules in ``text``."""
        rules = load_yaml_rules(text, path="inline.yml")
        correlator = Correlator(rules.correlations, rules.base_rules, **options)
        assert correlator.load_errors == [], correlator.load_errors
        return correlator


def run(correlator: Correlator, detections: list[Detection]) -> list[Detection]:
    """Feed detections one call each (as a stream would), then flush."""
    fired: list[Detection] = []
    for detection in detections:
        fired.extend(correlator.process([detection]))
    fired.extend(correlator.flush())
    return fired
