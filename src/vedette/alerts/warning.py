"""Early warning with automatic retro-hunt, and incident grouping, off the worker's hot path.

The worker's alert commit hands the ids of new alerts to :meth:`Coordinator.submit`; a thread
of the coordinator takes them in id order and, for each:

1. groups it into an incident (:func:`vedette.store.state.incidents.group_alert`);
2. when the policy says so, hunts its observables through every *other* unit's stored events
   over the look-back, and raises a warning in each unit where they appear, carrying the
   observables found, the ATT&CK techniques and that unit's own hits. A unit where nothing
   appears gets nothing;
3. commits the position ``coordinate`` (the last alert id done) with the warnings, so after a
   crash the alerts past it are done again on start (warnings are one per unit and alert).

The hunt is one SELECT per unit through :func:`vedette.store.hunt.run_hunt` (the locked-down
DuckDB of the hunting API, reading only that unit's files): ``contains(lower(fields), '...')``
with each value written as it appears inside the JSON text and as an escaped SQL literal; the
rows are then checked field by field in Python, so a hit names the field and its value.

Step 2's search is the coordinator's :class:`WarningSearch`: in the embedded mode
:class:`LocalSearch` runs it in this process, one unit after the other; in the scale-out mode
:class:`vedette.server.warning_tasks.QueuedWarningSearch` splits it into (unit, day) tasks on
the work queue the retro-hunts use, run by the workers, and hands back their hits merged per
unit (:func:`merge_found`) so the warnings drafted here are the same.

The policy (``vedette serve --warning-policy FILE``, YAML; every key optional)::

    automatic: true          # false: no automatic retro-hunt (grouping still runs)
    lookback_days: 30        # how far back before the alert's first event to hunt
    min_level: high          # alerts whose observables come from event fields hunt at or above
    intel_min_level: informational   # alerts of intel detections (known indicators) hunt at
    source_units: all        # or a list of unit names whose alerts may trigger a hunt
    target_units: all        # or a list of unit names that may be hunted and warned
    exclude_units: []        # never hunted nor warned
    max_hits: 100            # hits kept per warning (the total is counted)
    draft:                   # warnings that wait for an analyst of the source side
      levels: [medium]       # 'all' or the levels drafted (absent: every warning is sent)
      units: all             # 'all' or the warned units whose warnings are drafted
    bulletin_where_absent: false   # true: units hunted where nothing appears get a bulletin
    grouping:
      window_seconds: 3600   # an alert joins an incident with an alert this close in time
      open_level: high       # an alert at or above this opens an incident when none matches
      chain_tactics: 3       # below open_level, this many ATT&CK tactics in kill-chain order
                             # on one host within the window open one (0: off)
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import orjson
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from vedette.alerts.observables import string_fields
from vedette.errors import ConfigError
from vedette.events import LEVELS
from vedette.store.eventstore import ParquetEventStore
from vedette.store.hunt import HuntRefused, run_hunt
from vedette.store.state.bulletins import publish_bulletin
from vedette.store.state.db import StateDB
from vedette.store.state.incidents import group_alert
from vedette.store.state.leases import LeaseLost
from vedette.store.state.models import Alert, Unit
from vedette.store.state.positions import get_position, set_position
from vedette.store.state.scope import Principal, Role, Scope
from vedette.store.state.warnings import record_warning

log = logging.getLogger("vedette.warning")

POSITION: Final = "coordinate"
MAX_VALUE_CHARS: Final = 512


@dataclass(slots=True, kw_only=True)
class WarningPolicy:
    """What runs automatically and which levels and units take part (see the module doc)."""

    automatic: bool = True
    lookback_days: float = 30.0
    min_level: str = "high"
    intel_min_level: str = "informational"
    source_units: list[str] | None = None
    target_units: list[str] | None = None
    exclude_units: list[str] = field(default_factory=list)
    max_hits: int = 100
    window_seconds: float = 3600.0
    open_level: str = "high"
    chain_tactics: int = 3
    draft_levels: list[str] | None = field(default_factory=list)
    """Levels of drafted warnings (None: all; empty: none drafted)."""
    draft_units: list[str] | None = None
    """Warned units whose warnings are drafted (None: all)."""
    bulletin_where_absent: bool = False

    def drafts(self, level: str, unit: str) -> bool:
        """True when a warning of this level to this unit waits for an analyst."""
        levels, units = self.draft_levels, self.draft_units
        return (levels is None or level in levels) and (units is None or unit in units)

    def triggers(self, kind: str, level: str, unit: str, has_observables: bool) -> bool:
        """True when an alert of this kind, level and unit starts a retro-hunt."""
        if not self.automatic or not has_observables or unit in self.exclude_units:
            return False
        if self.source_units is not None and unit not in self.source_units:
            return False
        floor = self.intel_min_level if kind == "intel" else self.min_level
        return _rank(level) >= _rank(floor)

    def targets(self, units: Iterable[str], source: str) -> list[str]:
        """The units to hunt for an alert of ``source``: every other one the policy allows."""
        return sorted(
            u
            for u in units
            if u != source
            and u not in self.exclude_units
            and (self.target_units is None or u in self.target_units)
        )


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


_GROUPING_KEYS: Final = ("window_seconds", "open_level", "chain_tactics")


def _units(value: Any, key: str) -> list[str] | None:
    if value is None or value == "all":
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"warning policy: {key} must be 'all' or a list of names")


def load_policy(path: Path | None) -> WarningPolicy:
    """The policy in ``path`` (YAML), or the documented default when ``path`` is None."""
    if path is None:
        return WarningPolicy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"warning policy {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"warning policy {path}: a mapping is expected")
    known = {
        "automatic",
        "lookback_days",
        "min_level",
        "intel_min_level",
        "source_units",
        "target_units",
        "exclude_units",
        "max_hits",
        "grouping",
        "draft",
        "bulletin_where_absent",
    }
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"warning policy {path}: unknown keys {sorted(unknown)}")
    grouping = data.get("grouping") or {}
    if not isinstance(grouping, Mapping) or set(grouping) - set(_GROUPING_KEYS):
        raise ConfigError(f"warning policy {path}: grouping takes {', '.join(_GROUPING_KEYS)}")
    policy = WarningPolicy(
        automatic=bool(data.get("automatic", True)),
        lookback_days=float(data.get("lookback_days", 30)),
        min_level=str(data.get("min_level", "high")),
        intel_min_level=str(data.get("intel_min_level", "informational")),
        source_units=_units(data.get("source_units"), "source_units"),
        target_units=_units(data.get("target_units"), "target_units"),
        exclude_units=_units(data.get("exclude_units"), "exclude_units") or [],
        max_hits=int(data.get("max_hits", 100)),
        window_seconds=float(grouping.get("window_seconds", 3600)),
        open_level=str(grouping.get("open_level", "high")),
        chain_tactics=int(grouping.get("chain_tactics", 3)),
        bulletin_where_absent=bool(data.get("bulletin_where_absent", False)),
    )
    draft = data.get("draft")
    if draft is not None:
        if not isinstance(draft, Mapping) or set(draft) - {"levels", "units"}:
            raise ConfigError(f"warning policy {path}: draft takes levels, units")
        policy.draft_levels = _units(draft.get("levels", "all"), "draft.levels")
        policy.draft_units = _units(draft.get("units", "all"), "draft.units")
        if any(level not in LEVELS for level in policy.draft_levels or []):
            raise ConfigError(f"warning policy {path}: draft.levels are {', '.join(LEVELS)}")
    for name in ("min_level", "intel_min_level", "open_level"):
        if getattr(policy, name) not in LEVELS:
            raise ConfigError(f"warning policy {path}: {name} must be one of {', '.join(LEVELS)}")
    if policy.chain_tactics != 0 and not 2 <= policy.chain_tactics <= 14:
        raise ConfigError(f"warning policy {path}: chain_tactics is 0 (off) or 2 to 14")
    if policy.lookback_days <= 0 or policy.max_hits < 1 or policy.window_seconds <= 0:
        raise ConfigError(f"warning policy {path}: lookback, max_hits and window must be > 0")
    return policy


# -- the hunt ------------------------------------------------------------------------------------


def _sql_literal(text: str) -> str:
    """A DuckDB string literal: quotes doubled, no backslash escapes in standard strings."""
    if "\x00" in text:
        raise ValueError("a NUL in a hunted value")
    return "'" + text.replace("'", "''") + "'"


def _needle(value: str) -> str:
    """``value`` as it appears inside the JSON text of ``fields`` (escaped like orjson does)."""
    return orjson.dumps(value.lower()).decode()[1:-1]


def hunt_sql(values: Iterable[str]) -> str:
    """The SELECT finding events whose fields contain any of ``values`` (case-insensitive)."""
    checks = [f"contains(lower(fields), {_sql_literal(_needle(v))})" for v in values]
    if not checks:
        raise ValueError("nothing to hunt")
    return (
        "SELECT time, host, fields FROM events WHERE "
        + " OR ".join(checks)
        + " ORDER BY time NULLS LAST"
    )


def _token(value: str) -> re.Pattern[str]:
    # Whole tokens only: 1.1.1.1 must not hit 1.1.1.10, evil.com must not hit notevil.com.
    return re.compile(
        r"(?<![A-Za-z0-9_.-])" + re.escape(value) + r"(?![A-Za-z0-9_-]|\.[A-Za-z0-9])", re.I
    )


def find_hits(
    store: ParquetEventStore,
    unit: str,
    observables: list[dict[str, Any]],
    *,
    time_from: datetime,
    time_to: datetime,
    max_hits: int,
) -> tuple[list[dict[str, Any]], int, list[dict[str, Any]]]:
    """``(hits, total, observables found)`` of ``observables`` in ``unit``'s stored events."""
    values = {str(o["value"]).lower(): o for o in observables if o.get("value")}
    if not values or not store.files([unit], time_from, time_to):
        return [], 0, []
    result = run_hunt(
        store,
        hunt_sql(values),
        units=[unit],
        time_from=time_from,
        time_to=time_to,
        max_rows=50_000,
        timeout_s=120.0,
    )
    patterns = {v: _token(v) for v in values}
    hits: list[dict[str, Any]] = []
    found: dict[str, dict[str, Any]] = {}
    total = 0
    for when, host, raw in result.rows:
        try:
            fields = orjson.loads(raw) if isinstance(raw, str) else {}
        except orjson.JSONDecodeError:
            continue
        if not isinstance(fields, dict):
            continue
        for name, text in string_fields(fields):
            for value, pattern in patterns.items():
                if pattern.search(text):
                    total += 1
                    found.setdefault(value, values[value])
                    if len(hits) < max_hits:
                        hits.append(
                            {
                                "host": host,
                                "time": when,
                                "field": name,
                                "value": text[:MAX_VALUE_CHARS],
                                "observable": {
                                    "type": values[value].get("type"),
                                    "value": values[value].get("value"),
                                },
                            }
                        )
    return hits, total, [{"type": o.get("type"), "value": o.get("value")} for o in found.values()]


# -- the search step -----------------------------------------------------------------------------

UnitFound = tuple[list[dict[str, Any]], int, list[dict[str, Any]]]
"""``(hits, total, observables found)`` of one unit (see :func:`find_hits`)."""


def merge_found(parts: Iterable[UnitFound], max_hits: int) -> UnitFound:
    """One unit's result from those of its days, oldest day first: what one search over all
    of them gives (hits in time order cut at ``max_hits``, totals summed, observables in the
    order first found)."""
    hits: list[dict[str, Any]] = []
    total = 0
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for part_hits, part_total, part_seen in parts:
        hits.extend(part_hits[: max(0, max_hits - len(hits))])
        total += part_total
        for observable in part_seen:
            seen.setdefault((observable.get("type"), observable.get("value")), observable)
    return hits, total, list(seen.values())


@dataclass(slots=True)
class SearchResult:
    """What the search of one alert's observables found, per target unit."""

    found: dict[str, UnitFound] = field(default_factory=dict)
    """Units where something appeared."""
    absent: list[str] = field(default_factory=list)
    """Units searched where nothing appeared."""
    errors: dict[str, str] = field(default_factory=dict)
    """Units whose search failed, with the reason (neither warned nor counted absent)."""


class SearchStopped(Exception):
    """The coordinator is stopping mid-search; the alert is done again from the position."""


class WarningSearch(Protocol):
    """The coordinator's search step (in-process, or tasks on the work queue)."""

    def search(
        self,
        alert_id: int,
        observables: list[dict[str, Any]],
        units: list[str],
        *,
        time_from: datetime,
        time_to: datetime,
        max_hits: int,
        stop: threading.Event,
    ) -> SearchResult:
        """Search ``units``' stored events; raises :class:`SearchStopped` once ``stop`` is set
        if it cannot finish first."""
        ...


class LocalSearch:
    """The embedded search: :func:`find_hits` for each unit in turn, in this process."""

    def __init__(self, store: ParquetEventStore) -> None:
        self.store = store

    def search(
        self,
        alert_id: int,
        observables: list[dict[str, Any]],
        units: list[str],
        *,
        time_from: datetime,
        time_to: datetime,
        max_hits: int,
        stop: threading.Event,
    ) -> SearchResult:
        """Every unit, one SELECT each (``stop`` is not needed: each takes seconds)."""
        result = SearchResult()
        for unit in units:
            try:
                hits, total, seen = find_hits(
                    self.store,
                    unit,
                    observables,
                    time_from=time_from,
                    time_to=time_to,
                    max_hits=max_hits,
                )
            except HuntRefused as exc:
                result.errors[unit] = exc.reason
                continue
            if total:
                result.found[unit] = (hits, total, seen)
            else:
                result.absent.append(unit)
        return result


# -- the coordinator -----------------------------------------------------------------------------


@dataclass(slots=True)
class CoordinatorStats:
    """Counters for /metrics and tests; written by the coordinator thread only."""

    alerts: int = 0
    grouped: int = 0
    hunts: int = 0
    warnings: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _AlertFacts:
    id: int
    unit: str
    kind: str
    level: str
    title: str
    attack: list[Any]
    observables: list[Any]
    first_seen: datetime
    rule_id: str = ""


class Coordinator:
    """Groups new alerts into incidents and runs early warning, in a thread of its own."""

    def __init__(
        self,
        state: StateDB,
        store: ParquetEventStore,
        policy: WarningPolicy,
        *,
        search: WarningSearch | None = None,
        fence: Callable[[Session], None] | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.policy = policy
        # The search step: in-process by default; the workers' tasks in the scale-out mode.
        self.search: WarningSearch = search or LocalSearch(store)
        self._stopping = threading.Event()
        # Scale-out: runs in each write transaction and raises LeaseLost once the scheduler
        # duty is lost (vedette.server.scheduler); the thread then stops, its work undone.
        self.fence = fence
        self.stats = CoordinatorStats()
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._done = 0
        self._busy = False
        self._halt = False
        self._idle = threading.Condition()

    def submit(self, alert_ids: Iterable[int]) -> None:
        """Hand over new alert ids (called by the worker after its commit; never blocks)."""
        for alert_id in alert_ids:
            self._queue.put(alert_id)

    def start(self) -> None:
        """Queue the alerts past the committed position, then run the thread."""
        with self.state.session(readonly=True) as session:
            self._done = get_position(session, POSITION)
            pending = list(
                session.scalars(select(Alert.id).where(Alert.id > self._done).order_by(Alert.id))
            )
        self.submit(pending)
        self._thread = threading.Thread(target=self._run, name="vedette-coordinate", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0, *, drain: bool = True) -> None:
        """Finish the alert at hand and stop (queued ids are done again on the next start);
        ``drain``: do the queued ids first."""
        if not drain:
            self._halt = True
        self._stopping.set()  # a search on the work queue stops waiting; its alert is redone
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once the queue is empty and the alert at hand is done (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while not self._queue.empty() or self._busy:
                if time.monotonic() >= deadline:
                    return False
                self._idle.wait(0.1)
        return True

    def _run(self) -> None:
        while True:
            alert_id = self._queue.get()
            if alert_id is None or self._halt:
                return
            if alert_id <= self._done:
                continue
            self._busy = True
            try:
                self.process(alert_id)
                self._done = alert_id
            except SearchStopped:
                log.info("coordination stops at alert %d (done again on the next start)", alert_id)
                return
            except LeaseLost as exc:
                # Another scheduler holds the duty now: it redoes this alert from the position.
                log.warning("coordination stops at alert %d: %s", alert_id, exc)
                self._halt = True
                return
            except Exception as exc:  # one bad alert must not stop coordination
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("coordination of alert %d failed; skipped", alert_id)
            finally:
                self._busy = False
                with self._idle:
                    self._idle.notify_all()

    def process(self, alert_id: int) -> int:
        """Group one alert and warn the units where its observables appear; warnings raised."""
        self.stats.alerts += 1
        policy = self.policy
        with self.state.session() as session:
            incident = group_alert(
                session,
                alert_id,
                window_s=policy.window_seconds,
                open_level=policy.open_level,
                chain_tactics=policy.chain_tactics,
            )
            incident_id = incident.id if incident is not None else None
            self.stats.grouped += int(incident is not None)
            facts = _facts(session, alert_id)
            if facts is None or not policy.triggers(
                facts.kind, facts.level, facts.unit, bool(facts.observables)
            ):
                set_position(session, POSITION, alert_id)
                self._fence(session)
                return 0
            units = {name: uid for uid, name in session.execute(select(Unit.id, Unit.name))}
            self._fence(session)
        time_from = facts.first_seen - timedelta(days=policy.lookback_days)
        time_to = datetime.now(UTC) + timedelta(days=1)
        targets = policy.targets(units, facts.unit)
        self.stats.hunts += len(targets)
        result = self.search.search(
            alert_id,
            facts.observables,
            targets,
            time_from=time_from,
            time_to=time_to,
            max_hits=policy.max_hits,
            stop=self._stopping,
        )
        for unit, reason in result.errors.items():
            self.stats.errors += 1
            self.stats.last_error = f"hunt in {unit}: {reason}"
            log.error("retro-hunt of alert %d in %s failed: %s", alert_id, unit, reason)
        found = {units[unit]: got for unit, got in result.found.items()}
        absent = result.absent
        raised = 0
        names = {uid: name for name, uid in units.items()}
        with self.state.session() as session:
            for unit_id, (hits, total, seen) in found.items():
                _, created = record_warning(
                    session,
                    unit_id=unit_id,
                    source_incident_id=incident_id,
                    source_alert_id=facts.id,
                    level=facts.level,
                    title=f"Seen in another unit: {facts.title}",
                    observables=seen,
                    attack=facts.attack,
                    hits=hits,
                    hits_total=total,
                    draft=policy.drafts(facts.level, names[unit_id]),
                )
                raised += int(created)
            if policy.bulletin_where_absent and absent:
                # Same transaction as the position: a redo after a crash publishes it once.
                _absent_bulletin(session, facts, absent, policy.lookback_days)
            set_position(session, POSITION, alert_id)
            self._fence(session)
        self.stats.warnings += raised
        return raised

    def _fence(self, session: Session) -> None:
        """Last before a commit: refuse it when the duty was lost (scale-out; see __init__)."""
        if self.fence is not None:
            self.fence(session)


def _facts(session: Session, alert_id: int) -> _AlertFacts | None:
    alert = session.get(Alert, alert_id)
    if alert is None or alert.kind == "health":
        return None
    unit = session.get(Unit, alert.unit_id)
    return _AlertFacts(
        id=alert.id,
        unit=unit.name if unit else "",
        kind=alert.kind,
        level=alert.level,
        title=alert.rule_title,
        attack=list(alert.attack or []),
        observables=[o for o in alert.observables or [] if isinstance(o, dict)],
        first_seen=alert.first_seen,
        rule_id=alert.rule_id,
    )


def _absent_bulletin(
    session: Session, facts: _AlertFacts, units: list[str], lookback_days: float
) -> None:
    """A bulletin from the centre (the root unit) to ``units``, where nothing appeared: the
    observables and techniques to watch for, never the source unit or its events."""
    root = session.scalar(select(Unit).where(Unit.parent_id.is_(None)).order_by(Unit.id))
    if root is None:
        return
    every = frozenset(session.scalars(select(Unit.id)))
    system = Scope(
        principal=Principal(
            kind="token",
            id=0,
            name="early-warning",
            unit_id=root.id,
            unit_name=root.name,
            role=Role.ANALYST,
        ),
        unit_ids=every,
    )
    techniques = [str(t.get("id")) for t in facts.attack if isinstance(t, dict) and t.get("id")]
    text = (
        f"An attack seen in another unit; its observables do not appear in your stored events "
        f"of the last {lookback_days:g} days. Watch for them."
        + (f" ATT&CK: {', '.join(techniques)}." if techniques else "")
    )
    observables = [
        {"type": str(o.get("type")), "value": str(o.get("value"))} for o in facts.observables
    ]
    publish_bulletin(
        session,
        system,
        title=f"Watch for: {facts.title}",
        text=text,
        observables=observables,
        rules=[facts.rule_id] if facts.kind == "sigma" and facts.rule_id else [],
        units=units,
    )
