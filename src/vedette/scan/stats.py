"""The scan summary as data: what was read, skipped, loaded and found.

The same :class:`ScanStats` feeds the terminal summary and ``--summary-json``; its
:meth:`ScanStats.to_dict` keys are a documented contract (``docs/scan.md``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vedette.errors import ReadWarning, RuleLoadError
from vedette.events import LEVELS, Detection, iso_utc

EXAMPLES = 5
"""How many skipped records and rule errors are shown by example."""


@dataclass(slots=True)
class RuleFired:
    """A rule (or indicator, or correlation) and how often it fired in the output."""

    rule_id: str
    title: str
    level: str
    kind: str
    count: int = 0


@dataclass(slots=True)
class ScanStats:
    """Counters of one scan. Filled by the scan command; read by the summary renderers."""

    inputs: list[str] = field(default_factory=list)
    jobs: int = 1
    read_jobs: int = 0
    files_by_format: dict[str, int] = field(default_factory=dict)
    events_by_format: dict[str, int] = field(default_factory=dict)
    events_read: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[ReadWarning] = field(default_factory=list)
    warnings_total: int = 0
    rules_loaded: int = 0
    rule_errors: list[RuleLoadError] = field(default_factory=list)
    correlation_rules: int = 0
    indicators_loaded: int = 0
    notes: list[str] = field(default_factory=list)
    base_detections: int = 0
    detections: int = 0
    by_level: Counter[str] = field(default_factory=Counter)
    by_rule: dict[tuple[str, str], RuleFired] = field(default_factory=dict)
    by_host: Counter[str] = field(default_factory=Counter)
    by_tactic: Counter[str] = field(default_factory=Counter)
    by_technique: Counter[str] = field(default_factory=Counter)
    technique_names: dict[str, str] = field(default_factory=dict)
    first_event: datetime | None = None
    last_event: datetime | None = None
    first_detection: datetime | None = None
    last_detection: datetime | None = None
    load_seconds: float = 0.0
    """Time spent loading rules, indicators and ATT&CK data (part of ``elapsed_seconds``)."""
    elapsed_seconds: float = 0.0

    @property
    def records_skipped(self) -> int:
        """Total records (or file parts) that could not be read."""
        return sum(self.skipped_by_reason.values())

    @property
    def rules_not_loaded(self) -> int:
        """Rules that did not load."""
        return len(self.rule_errors)

    @property
    def files_read(self) -> int:
        """Input files read, all formats."""
        return sum(self.files_by_format.values())

    @property
    def events_per_second(self) -> float:
        """Read-and-detect throughput of the whole command."""
        return self.events_read / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def add_warnings(self, warnings: list[ReadWarning]) -> None:
        """Count read warnings by reason and keep the first few (by path) as examples."""
        self._keep_examples(warnings)
        for warning in warnings:
            self.warnings_total += 1
            reason = warning.reason
            self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + max(
                1, warning.records
            )

    def add_skips(self, by_reason: dict[str, int], examples: list[ReadWarning]) -> None:
        """Add skip counts already totalled by a read report, and its first warnings."""
        for reason, count in by_reason.items():
            self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + count
        self.warnings_total += sum(by_reason.values())
        self._keep_examples(examples)

    def _keep_examples(self, warnings: list[ReadWarning]) -> None:
        # The first few in (path, offset, line) order, not in worker completion order: two runs
        # of the same scan print the same summary whatever --jobs.
        merged = sorted([*self.skipped_examples, *warnings], key=_example_key)
        self.skipped_examples = merged[:EXAMPLES]

    def observe(self, detection: Detection) -> None:
        """Count one output detection."""
        self.detections += 1
        self.by_level[detection.level] += 1
        key = (detection.kind, detection.rule_id)
        fired = self.by_rule.get(key)
        if fired is None:
            fired = RuleFired(
                detection.rule_id, detection.rule_title, detection.level, detection.kind
            )
            self.by_rule[key] = fired
        fired.count += 1
        self.by_host[detection.event.host or "-"] += 1
        for technique_id in {ref.technique_id for ref in detection.attack}:
            self.by_technique[technique_id] += 1
        for ref in detection.attack:
            if ref.name:
                self.technique_names[ref.technique_id] = ref.name
        # A detection counts once per tactic: a rule tagged with three execution techniques
        # is one execution detection, not three (the column says "detections").
        for tactic in {tactic for ref in detection.attack for tactic in ref.tactics}:
            self.by_tactic[tactic] += 1
        when = detection.event.timestamp
        if when is not None:
            if self.first_detection is None or when < self.first_detection:
                self.first_detection = when
            if self.last_detection is None or when > self.last_detection:
                self.last_detection = when

    def top_rules(self, limit: int = 10) -> list[RuleFired]:
        """Rules that fired most, ties by title."""
        ranked = sorted(self.by_rule.values(), key=lambda r: (-r.count, r.title, r.rule_id))
        return ranked[:limit]

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable summary (``--summary-json``)."""
        return {
            "inputs": list(self.inputs),
            "jobs": self.jobs,
            "files_read": self.files_read,
            "files_by_format": dict(sorted(self.files_by_format.items())),
            "events_read": self.events_read,
            "events_by_format": dict(sorted(self.events_by_format.items())),
            "records_skipped": self.records_skipped,
            "skipped_by_reason": dict(sorted(self.skipped_by_reason.items())),
            "skipped_examples": [_warning_dict(w) for w in self.skipped_examples],
            "rules_loaded": self.rules_loaded,
            "rules_not_loaded": self.rules_not_loaded,
            "rule_errors": [_rule_error_dict(e) for e in self.rule_errors],
            "correlation_rules": self.correlation_rules,
            "indicators_loaded": self.indicators_loaded,
            "detections": self.detections,
            "base_detections": self.base_detections,
            "detections_by_level": {lv: self.by_level[lv] for lv in LEVELS if self.by_level[lv]},
            "detections_by_rule": {
                r.rule_id: r.count
                for r in sorted(self.by_rule.values(), key=lambda r: (-r.count, r.rule_id))
            },
            "rules_fired": [
                {
                    "rule_id": r.rule_id,
                    "rule_title": r.title,
                    "level": r.level,
                    "kind": r.kind,
                    "count": r.count,
                }
                for r in self.top_rules(limit=len(self.by_rule))
            ],
            "detections_by_host": dict(self.by_host.most_common()),
            "attack_tactics": dict(self.by_tactic.most_common()),
            "attack_techniques": dict(self.by_technique.most_common()),
            "time_range": {"first": iso_utc(self.first_event), "last": iso_utc(self.last_event)},
            "detection_time_range": {
                "first": iso_utc(self.first_detection),
                "last": iso_utc(self.last_detection),
            },
            "notes": list(self.notes),
            "load_seconds": round(self.load_seconds, 3),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
        }


def _warning_dict(warning: ReadWarning) -> dict[str, Any]:
    return {
        "path": warning.path,
        "reason": warning.reason,
        "detail": warning.detail,
        "offset": warning.offset,
        "line": warning.line,
        "records": warning.records,
    }


def _rule_error_dict(error: RuleLoadError) -> dict[str, Any]:
    return dict(error.to_dict())


def _example_key(warning: ReadWarning) -> tuple[bool, str, int, int, str, str]:
    offset = -1 if warning.offset is None else warning.offset
    line = -1 if warning.line is None else warning.line
    # Internal errors first: they are bugs, and the scan command quotes one on stderr.
    internal = warning.reason in ("internal-error", "worker-died")
    return (not internal, warning.path, offset, line, warning.reason, warning.detail)
