"""In-memory fakes for scan tests: an engine, an input source, a correlator, an ATT&CK KB.

They follow the contracts of the brief (``match``, ``process``/``flush``, ``enrich``) so the
pipeline can be tested without the real engine and readers; integration tests use the real
ones on real data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from vedette.errors import ReadWarning
from vedette.events import AttackRef, Detection, Event, LogSource, SourceRef
from vedette.scan.inputs import ReadJob, ReadSummary

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(slots=True, frozen=True)
class FakeRule:
    """Fires when ``field`` equals ``value``."""

    rule_id: str
    title: str
    field: str
    value: Any
    level: str = "medium"
    status: str = "test"
    tags: tuple[str, ...] = ()


class FakeEngine:
    """An engine over :class:`FakeRule`s, with the ``match`` contract of ``vedette.detect``."""

    def __init__(self, *rules: FakeRule) -> None:
        self.rules = list(rules)
        self.calls = 0

    def match(self, events: Sequence[Event]) -> list[Detection]:
        self.calls += 1
        found = []
        for event in events:
            for rule in self.rules:
                if event.fields.get(rule.field) == rule.value:
                    techniques = [
                        t[len("attack.") :].upper() for t in rule.tags if t.startswith("attack.t")
                    ]
                    found.append(
                        Detection(
                            rule_id=rule.rule_id,
                            rule_title=rule.title,
                            level=rule.level,
                            event=event,
                            status=rule.status,
                            tags=rule.tags,
                            attack=tuple(AttackRef(t) for t in techniques),
                            matched=("selection",),
                        )
                    )
        return found


def make_event(
    path: str,
    record: int,
    *,
    seconds: float = 0,
    host: str = "ws1.corp.local",
    **fields: Any,
) -> Event:
    """A Windows process-creation event at ``T0 + seconds``."""
    return Event(
        fields={"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", **fields},
        logsource=LogSource("windows", frozenset({"sysmon"}), frozenset({"process_creation"})),
        timestamp=T0 + timedelta(seconds=seconds),
        host=host,
        source=SourceRef(path=path, format="evtx", record_id=record),
    )


@dataclass
class MemoryInput:
    """Files held in memory: ``files[path]`` is its events, read in batches of ``batch_size``.

    The report is a plain dict (picklable without this module): events and files per format,
    and warnings. A path listed in ``broken`` yields a warning and no events.
    """

    files: dict[str, list[Event]]
    batch_size: int = 3
    broken: dict[str, str] = field(default_factory=dict)
    explode: set[str] = field(default_factory=set)

    def plan(self, paths: Sequence[Path]) -> tuple[list[ReadJob], list[ReadWarning]]:
        wanted = [str(p) for p in paths]
        jobs = []
        warnings = []
        for name in wanted:
            matches = [f for f in sorted({*self.files, *self.broken}) if f.startswith(name)]
            if not matches:
                warnings.append(ReadWarning(path=name, reason="not-found"))
            jobs.extend(ReadJob(path=f, size=len(self.files.get(f, ())), task=f) for f in matches)
        return jobs, warnings

    def read(self, job: ReadJob, report: dict[str, Any]) -> Iterator[list[Event]]:
        if job.path in self.explode:
            raise RuntimeError("reader bug")
        if job.path in self.broken:
            report["warnings"].append(
                ReadWarning(path=job.path, reason=self.broken[job.path], offset=0)
            )
            return
        events = self.files[job.path]
        report["files"]["evtx"] = report["files"].get("evtx", 0) + 1
        for start in range(0, len(events), self.batch_size):
            batch = events[start : start + self.batch_size]
            report["events"]["evtx"] = report["events"].get("evtx", 0) + len(batch)
            yield batch

    def new_report(self) -> dict[str, Any]:
        return {"events": {}, "files": {}, "warnings": []}

    def merge(self, into: dict[str, Any], other: dict[str, Any]) -> None:
        for key in ("events", "files"):
            for fmt, count in other[key].items():
                into[key][fmt] = into[key].get(fmt, 0) + count
        into["warnings"].extend(other["warnings"])

    def summarize(self, report: dict[str, Any]) -> ReadSummary:
        by_reason: dict[str, int] = {}
        for warning in report["warnings"]:
            by_reason[warning.reason] = by_reason.get(warning.reason, 0) + 1
        return ReadSummary(
            events_by_format=dict(report["events"]),
            files_by_format=dict(report["files"]),
            warnings=list(report["warnings"]),
            skipped_by_reason=by_reason,
        )


class CountingCorrelator:
    """Fires once per ``threshold`` detections of ``rule_id`` (in arrival order)."""

    def __init__(self, rule_id: str, threshold: int, *, suppress: bool = False) -> None:
        self.rule_id = rule_id
        self.threshold = threshold
        self.seen: list[Detection] = []
        self.times: list[datetime | None] = []
        self.suppressed_rule_ids = frozenset({rule_id}) if suppress else frozenset()
        self.warnings: list[str] = []

    def process(self, detections: Sequence[Detection]) -> list[Detection]:
        fired = []
        for detection in detections:
            self.times.append(detection.event.timestamp)
            if detection.rule_id != self.rule_id:
                continue
            self.seen.append(detection)
            if len(self.seen) % self.threshold == 0:
                fired.append(
                    replace(
                        detection,
                        rule_id=f"corr-{self.rule_id}",
                        rule_title=f"{self.threshold} x {detection.rule_title}",
                        kind="correlation",
                        level="high",
                        extra={"count": self.threshold},
                    )
                )
        return fired

    def flush(self) -> list[Detection]:
        return []


class FakeAttackKB:
    """Names and tactics for a few techniques, filled in place like ``AttackKB.enrich``."""

    TABLE: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "T1059.001": ("PowerShell", ("execution",)),
        "T1003.001": ("LSASS Memory", ("credential-access",)),
    }

    def enrich(self, detections: list[Detection]) -> None:
        for detection in detections:
            detection.attack = tuple(
                AttackRef(ref.technique_id, *self.TABLE.get(ref.technique_id, ("", ())))
                for ref in detection.attack
            )
