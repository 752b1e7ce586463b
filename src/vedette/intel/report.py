"""Indicator matches as :class:`~vedette.events.Detection` objects, shaped like rule matches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vedette.events import Detection, Event
from vedette.intel.model import TYPE_LABELS, IndicatorInfo

DEFAULT_LEVEL = "high"
"""Level of a match whose feed gives neither a level nor a confidence: a listed known-bad
observable seen in one's own logs deserves a look tonight."""


def level_from_confidence(confidence: int | None) -> str:
    """Sigma level for a STIX-style confidence 0-100 (STIX 2.1 Appendix A: None/Low/Med/High)."""
    if confidence is None:
        return DEFAULT_LEVEL
    if confidence <= 0:
        return "informational"
    if confidence < 30:
        return "low"
    if confidence < 70:
        return "medium"
    return "high"


def detection_title(info: IndicatorInfo, itype: str, value: str) -> str:
    """``Known-bad domain evil.example (MISP event 1234)``."""
    label = TYPE_LABELS.get(itype, itype)
    if itype == "ip" and "/" in value:
        label = "IP range"
    where = info.reference or info.source
    if info.reference and info.source and info.source not in info.reference:
        where = f"{info.source}: {info.reference}"
    return f"Known-bad {label} {value} ({where})"


@dataclass(slots=True, frozen=True)
class DetectionTemplate:
    """What every detection of one indicator shares; the index caches one per hit indicator."""

    info: IndicatorInfo
    rule_id: str
    title: str
    level: str
    extra: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, info: IndicatorInfo, itype: str, value: str, rule_id: str) -> DetectionTemplate:
        """The template for indicator ``info`` of type ``itype`` and value ``value``."""
        extra: dict[str, Any] = {
            "indicator_type": itype,
            "indicator_value": value,
            "source": info.source,
            "confidence": info.confidence,
            "valid_from": info.valid_from.isoformat() if info.valid_from else None,
            "valid_until": info.valid_until.isoformat() if info.valid_until else None,
        }
        if info.reference:
            extra["reference"] = info.reference
        if info.description:
            extra["description"] = info.description
        if info.labels:
            extra["labels"] = list(info.labels)
        if info.requires:
            extra["requires"] = [f"{t}:{v}" for t, v in info.requires]
        return cls(
            info=info,
            rule_id=rule_id,
            title=detection_title(info, itype, value),
            level=info.level or level_from_confidence(info.confidence),
            extra=tuple(extra.items()),
        )

    def detection(self, event: Event, observed: list[tuple[str, Any]]) -> Detection:
        """The detection of this indicator in ``event`` (``observed``: field, value pairs)."""
        extra = {key: list(value) if isinstance(value, list) else value
                 for key, value in self.extra}  # fmt: skip
        extra["observed"] = dict(observed)
        return Detection(
            rule_id=self.rule_id,
            rule_title=self.title,
            level=self.level,
            event=event,
            tags=self.info.tags,
            attack=self.info.attack,
            matched=tuple(dict.fromkeys(field for field, _ in observed)),
            kind="intel",
            rule_name=None,
            rule_path=None,
            extra=extra,
        )
