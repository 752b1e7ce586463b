"""What an alert keeps of a detection: its fingerprint, ATT&CK, matched selections, sample event.

An alert stands for every detection of one *fingerprint* in one unit within the dedup window:
the rule (or correlation, or indicator) and the key fields that tell one incident from another.

==============  =================================================================
kind            key fields of the fingerprint (beside rule id and unit)
==============  =================================================================
``sigma``       the host
``correlation`` the group-by values of the correlation (they name what correlated)
``intel``       the host and the indicator value that was seen
==============  =================================================================

So a password-guessing burst against one host is one alert with a count, while the same rule on
another host is another alert an analyst can close on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vedette.alerts.observables import field_observables, intel_observables, merge
from vedette.events import Detection, iso_utc
from vedette.output.records import jsonable

MAX_SAMPLE_VALUE = 4096
"""Characters kept of each field value in an alert's sample event (the event store has all)."""


@dataclass(slots=True, frozen=True)
class AlertFacts:
    """One detection, reduced to what the state store keeps of it."""

    kind: str
    rule_id: str
    rule_title: str
    level: str
    key_fields: dict[str, Any]
    when: datetime
    host: str | None
    attack: list[dict[str, Any]]
    matched: dict[str, Any]
    sample_event: dict[str, Any]
    observables: list[dict[str, str]]


def key_fields(detection: Detection) -> dict[str, Any]:
    """The fields, beside rule and unit, that make two detections the same alert."""
    host = detection.event.host
    if detection.kind == "correlation":
        return {"group": jsonable(detection.extra.get("group_by") or {})}
    if detection.kind == "intel":
        return {
            "host": host,
            "indicator": str(detection.extra.get("indicator_value", detection.rule_id)),
        }
    return {"host": host}


def facts_of(
    detection: Detection,
    *,
    received: datetime,
    event_observables: list[dict[str, str]] | None = None,
) -> AlertFacts:
    """The alert facts of a detection; ``received`` dates events that carry no time.

    ``event_observables``: the event's :func:`field_observables`, when the caller already has
    them (several rules firing on one event share them).
    """
    event = detection.event
    when = event.timestamp or received
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    source = event.source
    return AlertFacts(
        kind=detection.kind,
        rule_id=detection.rule_id,
        rule_title=detection.rule_title,
        level=detection.level,
        key_fields=key_fields(detection),
        when=when,
        host=event.host,
        attack=[
            {"id": ref.technique_id, "name": ref.name or None, "tactics": list(ref.tactics)}
            for ref in detection.attack
        ],
        matched={
            "selections": list(detection.matched),
            "details": _bounded(jsonable(detection.extra)),
            "rule_path": detection.rule_path,
            "event_time": iso_utc(event.timestamp),
            "source_format": source.format if source else None,
        },
        sample_event=_bounded(jsonable(event.fields)),
        observables=_observables(detection, event_observables),
    )


def _observables(
    detection: Detection, event_observables: list[dict[str, str]] | None
) -> list[dict[str, str]]:
    """Indicator values of an intel detection, then public IPs, domains, URLs and hashes of its
    event's fields (:mod:`vedette.alerts.observables`): what early warning hunts for."""
    found = intel_observables(detection.extra) if detection.kind == "intel" else []
    if event_observables is None:
        event_observables = field_observables(detection.event.fields)
    return merge(found, event_observables)


def _bounded(value: Any) -> Any:
    """Cut long strings so one alert row never carries megabytes of attacker-chosen text."""
    if isinstance(value, str):
        return value if len(value) <= MAX_SAMPLE_VALUE else value[:MAX_SAMPLE_VALUE] + "…"
    if isinstance(value, dict):
        return {str(k): _bounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v) for v in value[:256]]
    return value
