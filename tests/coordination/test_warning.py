"""Early warning below the HTTP layer: the hunt query, its escaping, look-back, policy, replay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vedette.alerts.warning import (
    Coordinator,
    WarningPolicy,
    find_hits,
    hunt_sql,
    load_policy,
    merge_found,
)
from vedette.errors import ConfigError
from vedette.store.eventstore import EventRow, ParquetEventStore, events_table
from vedette.store.state import StateDB, add_unit, open_state, record_detection, unit_by_name
from vedette.store.state.warnings import EarlyWarning

pytestmark = pytest.mark.embedded_only(
    "no centre: early warning below the HTTP layer, on SQLite and PostgreSQL"
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
QUOTED = "https://evil.example.org/a'b\\c\"d"


def _row(seq: int, unit: str, when: datetime, host: str, fields: dict[str, Any]) -> EventRow:
    return EventRow(
        seq=seq,
        unit=unit,
        time=when,
        host=host,
        product="windows",
        services=("sysmon",),
        categories=(),
        source_format="json",
        record_id=seq,
        fields=fields,
        raw=None,
        received=when,
    )


@pytest.fixture
def store(tmp_path: Path) -> ParquetEventStore:
    store = ParquetEventStore(tmp_path / "events")
    rows = [
        _row(1, "b", T0 - timedelta(days=1), "b-ws1", {"DestinationIp": "198.51.100.7"}),
        _row(2, "b", T0 - timedelta(days=2), "b-ws2", {"CommandLine": f"curl {QUOTED} -o x"}),
        _row(3, "b", T0 - timedelta(days=40), "b-old", {"DestinationIp": "198.51.100.7"}),
        _row(4, "b", T0, "b-ws3", {"DestinationIp": "198.51.100.70"}),  # not a hit
        _row(5, "c", T0, "c-ws1", {"DestinationIp": "203.0.113.99"}),
        _row(6, "a", T0, "a-ws1", {"DestinationIp": "198.51.100.7"}),
    ]
    store.write(events_table(rows), 1, 6)
    return store


def test_hits_name_the_field_respect_lookback_and_whole_tokens(store: ParquetEventStore) -> None:
    observables = [{"type": "ip", "value": "198.51.100.7"}, {"type": "url", "value": QUOTED}]
    hits, total, found = find_hits(
        store,
        "b",
        observables,
        time_from=T0 - timedelta(days=30),
        time_to=T0 + timedelta(days=1),
        max_hits=10,
    )
    assert total == 2
    assert {(h["host"], h["field"]) for h in hits} == {
        ("b-ws1", "DestinationIp"),
        ("b-ws2", "CommandLine"),
    }
    assert {o["value"] for o in found} == {"198.51.100.7", QUOTED}
    # 60 days back reaches the old event; max_hits cuts the list, not the count.
    hits, total, _ = find_hits(
        store,
        "b",
        observables,
        time_from=T0 - timedelta(days=60),
        time_to=T0 + timedelta(days=1),
        max_hits=1,
    )
    assert total == 3 and len(hits) == 1
    # Nothing in c; a unit with no files at all is not even queried.
    window = {"time_from": T0 - timedelta(days=30), "time_to": T0 + timedelta(days=1)}
    assert find_hits(store, "c", observables, max_hits=10, **window) == ([], 0, [])
    assert find_hits(store, "nobody", observables, max_hits=10, **window) == ([], 0, [])


@pytest.mark.parametrize("max_hits", [1, 2, 10])
def test_days_searched_apart_and_merged_give_one_search(
    store: ParquetEventStore, max_hits: int
) -> None:
    """The scale-out search runs find_hits per (unit, day) and merges the days, oldest first:
    the result must be the single search's, hits cut at max_hits included."""
    observables = [{"type": "ip", "value": "198.51.100.7"}, {"type": "url", "value": QUOTED}]
    low, high = T0 - timedelta(days=60), T0 + timedelta(days=1)
    whole = find_hits(store, "b", observables, time_from=low, time_to=high, max_hits=max_hits)
    parts = []
    for day in store.days("b"):
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        end = start + timedelta(days=1) - timedelta(microseconds=1)
        part = find_hits(
            store,
            "b",
            observables,
            time_from=max(start, low),
            time_to=min(end, high),
            max_hits=max_hits,
        )
        parts.append(part)
    assert len(parts) == 4 and whole[1] == 3
    assert merge_found(parts, max_hits) == whole


def test_hunt_sql_escapes_every_value() -> None:
    sql = hunt_sql(["x' OR true --", "a\\b"])
    assert "'x'' or true --'" in sql  # quote doubled (and lower-cased like fields)
    assert "'a\\\\b'" in sql  # the backslash as JSON text has it
    with pytest.raises(ValueError):
        hunt_sql([])
    # A NUL never reaches DuckDB: inside JSON text it is written \u0000.
    assert "'nul\\u0000'" in hunt_sql(["nul\x00"])


def test_policy_file_and_its_refusals(tmp_path: Path) -> None:
    default = load_policy(None)
    assert default.lookback_days == 30 and default.min_level == "high"
    assert default.triggers("intel", "low", "a", True)
    assert not default.triggers("sigma", "medium", "a", True)
    assert not default.triggers("sigma", "critical", "a", False)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "lookback_days: 7\nmin_level: medium\nsource_units: [a]\n"
        "exclude_units: [c]\ngrouping: {window_seconds: 600, open_level: critical}\n"
    )
    policy = load_policy(path)
    assert policy.triggers("sigma", "medium", "a", True)
    assert not policy.triggers("sigma", "critical", "b", True)
    assert policy.targets(["a", "b", "c", "hq"], "a") == ["b", "hq"]
    assert (policy.window_seconds, policy.open_level) == (600, "critical")
    for bad in ("min_level: loud\n", "lookback: 3\n", "source_units: 3\n", "- a\n"):
        path.write_text(bad)
        with pytest.raises(ConfigError):
            load_policy(path)


@pytest.fixture
def state(state_url: str) -> Iterator[StateDB]:
    db = open_state(state_url)
    with db.session() as session:
        add_unit(session, name="hq", parent=None)
        for unit in ("a", "b", "c"):
            add_unit(session, name=unit, parent="hq")
    yield db
    db.close()


def test_coordinator_warns_once_even_when_run_again(
    state: StateDB, store: ParquetEventStore
) -> None:
    with state.session() as session:
        row, _ = record_detection(
            session,
            unit_id=unit_by_name(session, "a").id,
            fingerprint="f",
            kind="intel",
            rule_id="intel-1",
            rule_title="Known-bad IP",
            level="high",
            when=T0,
            host="a-ws1",
            attack=[{"id": "T1071", "name": None, "tactics": []}],
            observables=[{"type": "ip", "field": "DestinationIp", "value": "198.51.100.7"}],
        )
        alert_id = row.id
    coordinator = Coordinator(state, store, WarningPolicy())
    assert coordinator.process(alert_id) == 1
    assert coordinator.process(alert_id) == 0  # a replay after a crash warns nobody twice
    with state.session(readonly=True) as session:
        warnings = session.query(EarlyWarning).all()
        assert [unit_by_name(session, "b").id] == [w.unit_id for w in warnings]
        (warning,) = warnings
        assert warning.source_incident_id is not None and warning.hits_total == 1
        assert warning.hits[0]["host"] == "b-ws1"  # never a's own event
    # Started again, it queues nothing: the position says this alert is done.
    again = Coordinator(state, store, WarningPolicy())
    again.start()
    try:
        assert again.wait_idle(10)
        assert again.stats.alerts == 0
    finally:
        again.stop()
