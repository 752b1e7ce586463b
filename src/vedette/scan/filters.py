"""Which detections a scan shows: level, status, tags / ATT&CK, time window, rules, hosts.

Filters apply to the output only: correlation rules still see every base detection, so that
``--min-level high`` does not silently break a correlation built on medium-level rules.
Values of one option are alternatives (OR); different options must all hold (AND).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vedette.errors import ConfigError
from vedette.events import LEVELS, Detection, level_rank

_DATE_ONLY = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")
_TACTIC_ID = re.compile(r"^TA\d{4}$", re.IGNORECASE)
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$", re.IGNORECASE)


def parse_time(text: str, *, option: str, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or date-time as aware UTC (a time without offset is taken as UTC).

    With ``end_of_day`` a bare date is the last instant of that day: "--to 2026-11-20" is
    what a responder says for "up to and including the 20th", not "up to its midnight".
    """
    text = text.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option}: {text!r} is not an ISO 8601 time (e.g. 2024-03-01 or 2024-03-01T12:00:00Z)"
        ) from None
    if end_of_day and _DATE_ONLY.match(text):
        when = when + timedelta(days=1) - timedelta(microseconds=1)
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_level(text: str, *, option: str) -> str:
    """A Sigma level name, checked."""
    level = text.strip().lower()
    if level not in LEVELS:
        raise ConfigError(f"{option}: unknown level {text!r} (one of: {', '.join(LEVELS)})")
    return level


@dataclass(slots=True, frozen=True, kw_only=True)
class DetectionFilter:
    """The output filters of a scan; the default accepts everything."""

    min_level: str | None = None
    statuses: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()
    attack: tuple[str, ...] = ()
    time_from: datetime | None = None
    time_to: datetime | None = None
    exclude_rules: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        min_level: str | None = None,
        statuses: Iterable[str] = (),
        tags: Iterable[str] = (),
        attack: Iterable[str] = (),
        time_from: str | None = None,
        time_to: str | None = None,
        exclude_rules: Iterable[str] = (),
        hosts: Iterable[str] = (),
    ) -> DetectionFilter:
        """Validate command-line values and build the filter (raises ConfigError)."""
        start = parse_time(time_from, option="--from") if time_from else None
        end = parse_time(time_to, option="--to", end_of_day=True) if time_to else None
        if start is not None and end is not None and end < start:
            raise ConfigError("--to is earlier than --from")
        return cls(
            min_level=parse_level(min_level, option="--min-level") if min_level else None,
            statuses=frozenset(s.strip().lower() for s in statuses),
            tags=tuple(t.strip().lower() for t in tags),
            attack=tuple(_attack_term(a) for a in attack),
            time_from=start,
            time_to=end,
            exclude_rules=frozenset(r.strip().lower() for r in exclude_rules),
            hosts=tuple(h.strip().lower() for h in hosts),
        )

    @property
    def is_empty(self) -> bool:
        """True when the filter accepts every detection."""
        return self == DetectionFilter()

    def accepts(self, detection: Detection) -> bool:
        """True when ``detection`` passes every filter given."""
        if self.min_level is not None and level_rank(detection.level) < level_rank(self.min_level):
            return False
        if self.statuses and (detection.status or "").lower() not in self.statuses:
            return False
        if self.exclude_rules and self._excluded(detection):
            return False
        if (self.time_from or self.time_to) and not self._in_window(detection.event.timestamp):
            return False
        if self.hosts and not self._host_matches(detection.event.host):
            return False
        if self.tags and not self._tag_matches(detection):
            return False
        return not (self.attack and not self._attack_matches(detection))

    def _excluded(self, detection: Detection) -> bool:
        keys = (detection.rule_id, detection.rule_name or "")
        return any(key.lower() in self.exclude_rules for key in keys if key)

    def _in_window(self, when: datetime | None) -> bool:
        if when is None:
            return False  # an undated event cannot be shown to lie inside a window
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if self.time_from is not None and when < self.time_from:
            return False
        return self.time_to is None or when <= self.time_to

    def _host_matches(self, host: str | None) -> bool:
        name = (host or "").lower()
        short = name.split(".", 1)[0]
        return any(
            fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(short, p) for p in self.hosts
        )

    def _tag_matches(self, detection: Detection) -> bool:
        tags = [t.lower() for t in detection.tags]
        # A tag filter is exact or a dotted prefix: `attack` matches `attack.t1059.001`.
        return any(t == want or t.startswith(want + ".") for want in self.tags for t in tags)

    def _attack_matches(self, detection: Detection) -> bool:
        techniques = {ref.technique_id.upper() for ref in detection.attack}
        techniques.update(
            t[len("attack.") :].upper() for t in detection.tags if t.lower().startswith("attack.t")
        )
        tactics = {tactic.lower() for ref in detection.attack for tactic in ref.tactics}
        tactics.update(
            t[len("attack.") :].lower().replace("_", "-")
            for t in detection.tags
            if t.lower().startswith("attack.") and not _TECHNIQUE.match(t[len("attack.") :])
        )
        for want in self.attack:
            if _TECHNIQUE.match(want):
                if any(t == want or t.startswith(want + ".") for t in techniques):
                    return True
            elif want in tactics:
                return True
        return False


def _attack_term(text: str) -> str:
    """A technique id (upper case) or a tactic short name (``credential-access``).

    A tactic may be given by id (``TA0006``), short name or name ("Credential Access"): the
    bundled ATT&CK table resolves it, since detections carry tactic short names.
    """
    term = text.strip()
    if _TECHNIQUE.match(term):
        return term.upper()
    from vedette.intel.attack import AttackKB

    tactic = AttackKB.load().tactic(term)
    if tactic is not None:
        return tactic.shortname
    if _TACTIC_ID.match(term):
        raise ConfigError(f"--attack: {term!r} is not an ATT&CK tactic id")
    return term.lower().replace("_", "-").replace(" ", "-")
