"""ParquetEventStore: real events to Arrow, partitions by unit and day, replay, retention."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from datasets import dataset
from vedette.sources import ReadReport, read_events
from vedette.store.eventstore import (
    EVENTS_SCHEMA,
    EventRow,
    ParquetEventStore,
    event_row,
    events_table,
)

SAMPLES = (
    # (unit, file): three real EVTX samples recorded on three different days
    ("hq", ("evtx-attack-samples", "UACME_59_Sysmon.evtx")),
    ("agency/north", ("evtx-attack-samples", "Defense Evasion", "DE_104_system_log_cleared.evtx")),
    (
        "hq",
        ("evtx-attack-samples", "Defense Evasion", "Win_4985_T1186_Process_Doppelganging.evtx"),
    ),
)
RECEIVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def real_rows() -> list[EventRow]:
    rows = []
    for seq, (unit, parts) in enumerate(SAMPLES, start=1):
        report = ReadReport()
        for batch in read_events(dataset(*parts), report=report):
            rows += [event_row(e, seq=seq, unit=unit, received=RECEIVED) for e in batch]
        assert report.skipped == {}
    return rows


def _row(seq: int, unit: str, time: datetime | None, **fields: object) -> EventRow:
    return EventRow(
        seq=seq,
        unit=unit,
        time=time,
        host="h",
        product=None,
        services=(),
        categories=(),
        source_format="json",
        record_id=None,
        fields=dict(fields),
        raw='{"raw": 1}',
        received=RECEIVED,
    )


def test_events_table_from_real_events() -> None:
    rows = real_rows()
    table = events_table(rows)
    assert table.schema == EVENTS_SCHEMA
    assert table.num_rows == len(rows)
    stored = table.to_pylist()
    for row, out in zip(rows, stored, strict=True):
        assert row.time is not None
        assert out["time"] == row.time
        assert out["day"] == row.time.date().isoformat()
        assert out["services"] == sorted(row.services)
        assert out["service"] == (sorted(row.services)[0] if row.services else None)
        assert out["category"] == (sorted(row.categories)[0] if row.categories else None)
        assert orjson.loads(out["fields"]) == row.fields
        assert out["record_id"] == row.record_id and out["source_format"] == "evtx"
    assert {r["product"] for r in stored} == {"windows"}
    assert len({r["day"] for r in stored}) == 3


def test_day_falls_back_to_receive_time_and_fields_always_encode() -> None:
    naive = datetime(2024, 3, 2, 23, 30)
    # half past midnight at UTC+2 is still the 2nd in UTC
    east = datetime(2024, 3, 3, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    rows = [
        _row(1, "u", None, a=1),
        _row(1, "u", naive, when=datetime(2024, 1, 1, tzinfo=UTC), n={1: "x"}, l=[1, None]),
        _row(1, "u", east, flag=True),
        _row(1, "u", datetime(2024, 3, 3, 0, 30, tzinfo=UTC), flag=False),
    ]
    out = events_table(rows).to_pylist()
    assert [r["day"] for r in out] == ["2024-06-01", "2024-03-02", "2024-03-02", "2024-03-03"]
    assert out[0]["time"] is None
    assert out[2]["time"] == datetime(2024, 3, 2, 22, 30, tzinfo=UTC)
    assert orjson.loads(out[1]["fields"]) == {
        "when": "2024-01-01T00:00:00+00:00",
        "n": {"1": "x"},
        "l": [1, None],
    }


def test_write_partitions_by_unit_and_day(tmp_path: Path) -> None:
    rows = real_rows()
    store = ParquetEventStore(tmp_path / "events")
    assert store.write(events_table(rows), 1, 3) == len(rows)
    per_unit = Counter(r.unit for r in rows)
    assert store.counts() == dict(per_unit)
    hq_days = sorted({r.time.date().isoformat() for r in rows if r.unit == "hq" and r.time})
    assert store.days("hq") == hq_days
    north = store.unit_dir("agency/north")
    assert north.parent == store.root and north.name == "unit=agency%2Fnorth"
    files = store.files(["hq", "agency/north"])
    assert len(files) == 3
    assert all(p.name == f"part-{1:016d}-{3:016d}.parquet" for p in files)
    back = [r for p in files for r in pq.read_table(p).to_pylist()]
    assert sorted(r["record_id"] for r in back) == sorted(r.record_id for r in rows)
    assert all(pq.read_metadata(p).row_group(0).column(0).compression == "ZSTD" for p in files)
    assert store.last_seq() == 3
    # the same range again overwrites the same files: nothing is doubled
    store.write(events_table(rows), 1, 3)
    assert store.counts() == dict(per_unit)
    assert not list(store.root.rglob("*.tmp"))


def test_unit_names_cannot_leave_the_root(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    store.write(events_table([_row(1, "../../escape", None), _row(1, "..", None)]), 1, 1)
    assert sorted(store.counts()) == ["..", "../../escape"]
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == [
        "unit=..",
        "unit=..%2F..%2Fescape",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["events"]


def test_discard_after_removes_uncommitted_files(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path)
    t = datetime(2024, 5, 1, tzinfo=UTC)
    store.write(events_table([_row(1, "a", t), _row(2, "b", t)]), 1, 2)
    store.write(events_table([_row(3, "a", t), _row(4, "a", t + timedelta(days=1))]), 3, 4)
    store.write(events_table([_row(5, "b", t)]), 5, 5)
    stale = store.unit_dir("a") / "day=2024-05-01" / ".part-x.parquet.tmp"
    stale.write_bytes(b"half a file")
    assert store.last_seq() == 5
    assert store.discard_after(2) == 3
    assert store.last_seq() == 2 and not stale.exists()
    assert store.counts() == {"a": 1, "b": 1}
    assert store.discard_after(2) == 0
    assert ParquetEventStore(tmp_path / "empty").last_seq() == 0


def test_retention_and_time_pruning(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path)
    now = datetime(2024, 6, 30, 8, 0, tzinfo=UTC)
    rows = [_row(i, "a", now - timedelta(days=i)) for i in range(0, 40, 5)]
    rows.append(_row(99, "old", now - timedelta(days=60)))
    store.write(events_table(rows), 0, 99)
    assert store.files(["a"], now - timedelta(days=11), now - timedelta(days=4)) == [
        store.unit_dir("a") / f"day={d}" / f"part-{0:016d}-{99:016d}.parquet"
        for d in ("2024-06-20", "2024-06-25")
    ]
    assert store.files(["nobody"]) == []
    assert len(store.files(["a", "old"], time_from=now - timedelta(days=30))) == 7
    # Each file as if written on its own day (retention also looks at when a file was written).
    for path in store.files(["a", "old"]):
        day = datetime.fromisoformat(path.parent.name.removeprefix("day=")).replace(tzinfo=UTC)
        os.utime(path, (day.timestamp(), day.timestamp()))
    removed = store.apply_retention(30, now=now)
    # 2024-05-31 (30 days back) stays; 2024-05-26 and the 60-day-old unit go
    assert removed == 2
    assert store.days("a")[0] == "2024-05-31"
    assert store.counts() == {"a": 7}
    assert not store.unit_dir("old").exists()


def test_retention_keeps_old_days_written_recently(tmp_path: Path) -> None:
    # Evidence from 2019 sent today is kept for the retention period after it arrived.
    store = ParquetEventStore(tmp_path)
    store.write(events_table([_row(1, "a", datetime(2019, 3, 1, tzinfo=UTC))]), 1, 1)
    assert store.apply_retention(30) == 0
    assert store.counts() == {"a": 1}
    later = datetime.now(UTC) + timedelta(days=31)
    assert store.apply_retention(30, now=later) == 1
    assert store.counts() == {}


@pytest.mark.parametrize("days", [0, 1])
def test_retention_keeps_today(tmp_path: Path, days: int) -> None:
    store = ParquetEventStore(tmp_path)
    store.write(events_table([_row(1, "a", datetime.now(UTC))]), 1, 1)
    assert store.apply_retention(days) == 0
    assert store.counts() == {"a": 1}
