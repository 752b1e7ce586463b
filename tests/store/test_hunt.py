"""run_hunt: scoped read-only SQL over stored real events; everything else refused cleanly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from datasets import dataset
from vedette.events import Event
from vedette.sources import ReadReport, read_events
from vedette.store.eventstore import EVENTS_SCHEMA, ParquetEventStore, event_row, events_table
from vedette.store.hunt import HuntRefused, HuntResult, run_hunt

RECEIVED = datetime(2024, 6, 1, tzinfo=UTC)


def _read(*parts: str) -> list[Event]:
    report = ReadReport()
    events = [
        e for b in read_events(dataset("evtx-attack-samples", *parts), report=report) for e in b
    ]
    assert events and report.skipped == {}
    return events


@pytest.fixture(scope="module")
def real() -> dict[str, list[Event]]:
    return {
        "hq": _read("UACME_59_Sysmon.evtx"),
        "north": _read("Defense Evasion", "DE_104_system_log_cleared.evtx"),
    }


@pytest.fixture
def store(tmp_path: Path, real: dict[str, list[Event]]) -> ParquetEventStore:
    s = ParquetEventStore(tmp_path / "events")
    for seq, (unit, events) in enumerate(real.items(), start=1):
        rows = [event_row(e, seq=seq, unit=unit, received=RECEIVED) for e in events]
        s.write(events_table(rows), seq, seq)
    return s


def test_command_line_through_fields_json(
    store: ParquetEventStore, real: dict[str, list[Event]]
) -> None:
    result = run_hunt(
        store,
        "SELECT record_id, time, fields->>'CommandLine' AS cmd FROM events "
        "WHERE fields->>'CommandLine' IS NOT NULL ORDER BY record_id",
        units=["hq"],
    )
    expected = sorted(
        (e.source.record_id, e.timestamp.isoformat(), e.fields["CommandLine"])
        for e in real["hq"]
        if "CommandLine" in e.fields and e.source and e.timestamp
    )
    assert expected
    assert result == HuntResult(["record_id", "time", "cmd"], [list(x) for x in expected], False)
    # rows are plain JSON
    assert orjson.loads(orjson.dumps(result.rows)) == result.rows


def test_scope_hides_other_units(store: ParquetEventStore, real: dict[str, list[Event]]) -> None:
    both = run_hunt(
        store,
        "SELECT unit, count(*) FROM events GROUP BY unit ORDER BY unit",
        units=["hq", "north"],
    )
    assert both.rows == [["hq", len(real["hq"])], ["north", len(real["north"])]]
    mine = run_hunt(store, "SELECT * FROM events WHERE unit = 'north'", units=["hq"])
    assert mine.rows == [] and mine.columns == EVENTS_SCHEMA.names
    assert run_hunt(store, "SELECT count(*) FROM events", units=[]).rows == [[0]]


def test_empty_store_still_has_events(tmp_path: Path) -> None:
    result = run_hunt(ParquetEventStore(tmp_path), "SELECT * FROM events", units=["hq"])
    assert result == HuntResult(list(EVENTS_SCHEMA.names), [], False)
    typed = run_hunt(
        ParquetEventStore(tmp_path),
        "SELECT fields->>'x', services[1], time + INTERVAL 1 DAY FROM events",
        units=["hq"],
    )
    assert typed.rows == []


def test_time_range_filters_rows(store: ParquetEventStore, real: dict[str, list[Event]]) -> None:
    times = sorted(e.timestamp for e in real["hq"] if e.timestamp)
    assert times[0] != times[-1]
    result = run_hunt(
        store,
        "SELECT time FROM events ORDER BY time",
        units=["hq", "north"],
        time_from=times[1],
        time_to=times[-1] - timedelta(microseconds=1),
    )
    assert result.rows == [[t.isoformat()] for t in times[1:-1]]


def test_row_limit_truncates(store: ParquetEventStore, real: dict[str, list[Event]]) -> None:
    result = run_hunt(store, "SELECT seq FROM events", units=["hq"], max_rows=3)
    assert len(result.rows) == 3 and result.truncated
    exact = run_hunt(store, "SELECT seq FROM events", units=["hq"], max_rows=len(real["hq"]))
    assert len(exact.rows) == len(real["hq"]) and not exact.truncated


def test_timeout_interrupts(store: ParquetEventStore) -> None:
    slow = (
        "SELECT count(*) FROM range(1000000) a, range(1000000) b "
        "WHERE (a.range * 7 + b.range) % 1000003 = 17"
    )
    with pytest.raises(HuntRefused, match=r"longer than 0\.3 s"):
        run_hunt(store, slow, units=["hq"], timeout_s=0.3)


def _other_file(store: ParquetEventStore) -> str:
    return str(store.files(["north"])[0])


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "passwd"),
        ("SELECT * FROM read_text('/etc/hostname')", "hostname"),
        ("SELECT * FROM glob('/*')", "Permission"),
        ("SELECT * FROM '/etc/passwd'", "passwd"),
        ("SELECT * FROM read_parquet('{other}')", "Permission"),
        ("SELECT * FROM query('SELECT * FROM read_parquet(''{other}'')')", "Permission"),
        ("ATTACH '/tmp/x.duckdb' AS x", "only SELECT"),
        ("INSTALL httpfs", "only SELECT"),
        ("LOAD httpfs", "only SELECT"),
        ("COPY (SELECT * FROM events) TO '/tmp/out.csv'", "only SELECT"),
        ("SET enable_external_access = true", "only SELECT"),
        ("RESET lock_configuration", "only SELECT"),
        ("CREATE TABLE t AS SELECT * FROM events", "only SELECT"),
        ("PRAGMA version", "only SELECT"),
        ("EXPLAIN SELECT 1", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT 1; DROP VIEW events", "exactly one statement"),
        ("", "exactly one statement"),
        ("SELEC 1", "cannot parse"),
        ("SELECT nope FROM events", "nope"),
        ("SELECT * FROM store", "store"),
    ],
)
def test_refused_cleanly(store: ParquetEventStore, sql: str, reason: str) -> None:
    with pytest.raises(HuntRefused) as info:
        run_hunt(store, sql.format(other=_other_file(store)), units=["hq"])
    assert reason in info.value.reason
