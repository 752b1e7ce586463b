"""The compactor on real stored events: merges, crash recovery, hunters during the swap, crashes.

Events are the real EVTX samples of the shared datasets, written as the workers write them: a
file per unit and day for every flush (one spool batch here), in both namings (embedded and a
scale-out partition's). Every check compares what hunting reads before and after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets import dataset
from vedette.events import Event
from vedette.server.hunt_scan import read_listed
from vedette.server.partitions import PartitionEventStore
from vedette.sources import ReadReport, read_events
from vedette.store.compact import (
    CompactPolicy,
    _File,
    _lock,
    _write_merged,
    compact,
    read_status,
)
from vedette.store.eventstore import ParquetEventStore, PartName, event_row, events_table
from vedette.store.hunt import run_hunt

RECEIVED = datetime(2024, 6, 1, tzinfo=UTC)
UNITS = ("hq", "agency/north")
ALL_ROWS = (
    "SELECT seq, unit, time, day, host, product, service, category, services, categories, "
    "source_format, record_id, fields, raw FROM events ORDER BY seq, unit, record_id, fields"
)


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
        "hq": _read("UACME_59_Sysmon.evtx")
        + _read("Defense Evasion", "Win_4985_T1186_Process_Doppelganging.evtx"),
        "agency/north": _read("Defense Evasion", "DE_104_system_log_cleared.evtx"),
    }


def fill(store: ParquetEventStore, real: dict[str, list[Event]], batches: int, per: int = 7) -> int:
    """``batches`` flushes of ``per`` events of each unit (seq 1..batches); the rows written."""
    written = 0
    for seq in range(1, batches + 1):
        rows = []
        for unit, events in real.items():
            start = (seq * per) % len(events)
            chosen = (events + events)[start : start + per]
            rows += [event_row(e, seq=seq, unit=unit, received=RECEIVED) for e in chosen]
        written += store.write(events_table(rows), seq, seq)
    return written


def hunt_all(store: ParquetEventStore) -> list[list[object]]:
    result = run_hunt(store, ALL_ROWS, units=UNITS, max_rows=1_000_000)
    assert not result.truncated
    return result.rows


def parts(store: ParquetEventStore) -> list[Path]:
    return sorted(store.root.glob("unit=*/day=*/part-*.parquet"))


def name_of(path: Path) -> PartName:
    name = PartName.parse(path.name)
    assert name is not None, path
    return name


def at(position: int) -> Callable[[int | None], int]:
    return lambda partition: position


@pytest.mark.parametrize("partition", [None, 3])
def test_merges_only_committed_files_and_hunting_reads_the_same(
    tmp_path: Path, real: dict[str, list[Event]], partition: int | None
) -> None:
    store = (
        ParquetEventStore(tmp_path)
        if partition is None
        else PartitionEventStore(tmp_path, partition)
    )
    written = fill(store, real, 40)
    before = hunt_all(store)
    counts = store.counts()
    files_before = parts(store)
    assert len(before) == written and sum(counts.values()) == written

    report = compact(store, at(30), CompactPolicy(grace_seconds=0))

    after = parts(store)
    assert hunt_all(store) == before
    assert store.counts() == counts
    # A merge per folder with two committed files or more; the files past 30 stay as they were.
    committed: dict[Path, int] = {}
    for path in files_before:
        name = name_of(path)
        assert name.partition == partition
        if name.last <= 30:
            committed[path.parent] = committed.get(path.parent, 0) + 1
    assert report.merges == sum(1 for n in committed.values() if n >= 2) > 0
    assert (
        report.files_merged
        == report.sources_removed
        == sum(n for n in committed.values() if n >= 2)
    )
    assert len(after) == len(files_before) - report.files_merged + report.merges
    names = [name_of(p) for p in after]
    assert all(n.partition == partition for n in names)
    merged = [n for n in names if n.first != n.last]
    assert len(merged) == report.merges and all(n.last <= 30 for n in merged)
    uncommitted = [p for p in files_before if name_of(p).last > 30]
    assert set(uncommitted) <= set(after)
    # Crash recovery cuts what is past the committed position, and nothing merged.
    assert store.discard_after(30) == len(uncommitted)
    assert hunt_all(store) == [row for row in before if int(str(row[0])) <= 30]
    status = read_status(tmp_path)
    assert status["runs"] == 1 and status["files_merged"] == report.files_merged
    assert status["last_run"]["merges"] == report.merges


def test_target_size_bounds_each_merge(tmp_path: Path, real: dict[str, list[Event]]) -> None:
    store = ParquetEventStore(tmp_path)
    fill(store, real, 30, per=5)
    before = hunt_all(store)
    report = compact(store, at(30), CompactPolicy(target_rows=40, grace_seconds=0))
    assert report.merges > 2
    for path in parts(store):
        assert pq.read_metadata(path).num_rows <= 40
    assert hunt_all(store) == before
    # A second run with a larger target merges the merged files again.
    report = compact(store, at(30), CompactPolicy(grace_seconds=0))
    assert report.merges >= 1
    assert len(parts(store)) == len({p.parent for p in parts(store)})
    assert hunt_all(store) == before


def test_readers_hide_merged_sources_until_the_grace_ends(
    tmp_path: Path, real: dict[str, list[Event]]
) -> None:
    store = ParquetEventStore(tmp_path)
    fill(store, real, 20)
    before, counts = hunt_all(store), store.counts()
    listed = store.files(UNITS)

    report = compact(store, at(20), CompactPolicy(grace_seconds=3600))
    assert report.merges and report.sources_removed == 0
    # Sources and merged files side by side: every reader sees each event once.
    assert len(parts(store)) == len(listed) + report.merges
    assert hunt_all(store) == before
    assert store.counts() == counts
    assert len(store.files(UNITS)) == report.merges
    # The recovery of a restarting writer keeps both (all committed).
    assert store.discard_after(20) == 0
    # A run past the grace period deletes the sources.
    later = compact(store, at(20), CompactPolicy(grace_seconds=3600), now=time.time() + 3601)
    assert later.sources_removed == len(listed) and later.merges == 0
    assert parts(store) == store.files(UNITS)
    assert hunt_all(store) == before


def test_a_retro_hunt_reads_a_listed_file_from_the_merge_that_replaced_it(
    tmp_path: Path, real: dict[str, list[Event]]
) -> None:
    store = PartitionEventStore(tmp_path, 1)
    written = fill(store, real, 25)
    listed = [(unit, p) for unit in UNITS for p in store.files([unit])]

    def read_all() -> list[tuple[str, int | None, str, bytes]]:
        return sorted(
            (unit, e.source.record_id if e.source else None, str(e.timestamp),
             orjson.dumps(e.fields, option=orjson.OPT_SORT_KEYS))
            for unit, path in listed
            for _, batch in read_listed(store, path, unit)
            for e in batch
        )  # fmt: skip

    before = read_all()
    compact(store, at(25), CompactPolicy(target_rows=60, grace_seconds=0))
    assert not any(p.exists() for _, p in listed)
    assert len(before) == written
    assert read_all() == before


def test_hunters_during_compactions_count_every_event_once(
    tmp_path: Path, real: dict[str, list[Event]]
) -> None:
    store = ParquetEventStore(tmp_path)
    written = fill(store, real, 60, per=4)
    expected_sum = sum(int(str(r[0])) for r in hunt_all(store))
    seen: list[tuple[int, int]] = []
    problems: list[str] = []
    stop = threading.Event()

    def hunter() -> None:
        while not stop.is_set():
            try:
                rows = run_hunt(store, "SELECT count(*), sum(seq) FROM events", units=UNITS).rows
                seen.append((int(rows[0][0]), int(rows[0][1])))
                listed = [(u, p) for u in UNITS for p in store.files([u])]
                got = sum(n for u, p in listed for n, _ in read_listed(store, p, u))
                seen.append((got, expected_sum))
            except Exception as exc:  # reported below with the rest
                problems.append(repr(exc))

    threads = [threading.Thread(target=hunter) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        # Ever larger merges: each run swaps the last run's merged files for bigger ones.
        for rows in (20, 40, 80, 160, 320, 640, None):
            compact(store, at(60), CompactPolicy(target_rows=rows, grace_seconds=0))
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    assert not problems, problems[:3]
    assert seen and set(seen) == {(written, expected_sum)}
    assert len(parts(store)) == len({p.parent for p in parts(store)})


def test_a_run_interrupted_before_its_rename_is_cleaned_up(
    tmp_path: Path, real: dict[str, list[Event]]
) -> None:
    store = ParquetEventStore(tmp_path)
    fill(store, real, 10)
    before = hunt_all(store)
    folder = parts(store)[0].parent
    # The first steps of a merge, then the process "dies": a temporary file is left.
    sources = [
        _File(p, name_of(p), p.stat().st_size, p.stat().st_mtime)
        for p in sorted(folder.glob("part-*.parquet"))
    ]
    tmp = folder / f".compact-{PartName(1, 10).name}.tmp"
    _write_merged(tmp, sources, 1000)
    assert tmp.exists() and hunt_all(store) == before
    assert store.discard_after(10) == 0 and tmp.exists()  # the writer's recovery leaves it
    report = compact(store, at(10), CompactPolicy(grace_seconds=0))
    assert report.tmp_removed == 1 and report.merges >= 1
    assert not list(tmp_path.rglob("*.tmp"))
    assert hunt_all(store) == before


def test_only_one_compactor_at_a_time(tmp_path: Path, real: dict[str, list[Event]]) -> None:
    store = ParquetEventStore(tmp_path)
    fill(store, real, 5)
    files = parts(store)
    with _lock(tmp_path) as held:
        assert held
        report = compact(store, at(5), CompactPolicy(grace_seconds=0))
    assert report.busy and report.merges == 0 and parts(store) == files
    assert compact(store, at(5), CompactPolicy(grace_seconds=0)).merges >= 1


def test_files_of_another_schema_are_left_alone(
    tmp_path: Path, real: dict[str, list[Event]]
) -> None:
    store = ParquetEventStore(tmp_path)
    fill(store, real, 6)
    folder = parts(store)[0].parent
    old = folder / PartName(7, 7).name
    pq.write_table(pa.table({"seq": [7], "unit": ["hq"], "note": ["older version"]}), old)
    newer = folder / PartName(8, 8).name
    pq.write_table(pq.read_table(parts(store)[0]), newer)
    report = compact(store, at(8), CompactPolicy(grace_seconds=0))
    assert old.exists() and any("columns differ" in s for s in report.skipped)
    # The other files merge around it, never across it.
    assert newer.exists()
    assert not any(name_of(p).first < 7 < name_of(p).last for p in parts(store))


def test_a_merged_file_is_as_old_as_its_newest_source(
    tmp_path: Path, real: dict[str, list[Event]]
) -> None:
    store = ParquetEventStore(tmp_path)
    fill(store, real, 4)
    long_ago = time.time() - 200 * 86400
    for path in parts(store):
        os.utime(path, (long_ago, long_ago))
    compact(store, at(4), CompactPolicy(grace_seconds=0))
    assert all(abs(p.stat().st_mtime - long_ago) < 1 for p in parts(store))
    # Retention sees old days written long ago, merged or not (the samples are years old).
    days = {p.parent for p in parts(store)}
    assert store.apply_retention(90) == len(days)
    assert store.counts() == {}


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from vedette.store.compact import CompactPolicy, compact
    from vedette.store.eventstore import ParquetEventStore
    store = ParquetEventStore(Path(sys.argv[1]))
    policy = CompactPolicy(grace_seconds=0, row_group_rows=16)
    compact(store, lambda partition: int(sys.argv[2]), policy)
    """
)


def test_sigkill_at_any_step_loses_and_doubles_nothing(
    tmp_path: Path, real: dict[str, list[Event]]
) -> None:
    store = ParquetEventStore(tmp_path)
    fill(store, real, 200, per=3)
    before = hunt_all(store)
    kills = {"while writing": 0, "after a swap": 0}
    for _ in range(8):
        start = set(parts(store))
        process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), "200"])
        deadline = time.monotonic() + 120
        moment = None
        while process.poll() is None and time.monotonic() < deadline:
            if list(tmp_path.glob("unit=*/day=*/.compact-*.tmp")):
                moment = "while writing"
            elif set(parts(store)) - start:
                moment = "after a swap"
            if moment:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        process.wait(60)
        if moment:
            kills[moment] += 1
        # Whatever the moment, hunting reads every event once, and a writer's recovery
        # keeps it all (everything here is committed).
        assert hunt_all(store) == before
        assert store.discard_after(200) == 0
        assert hunt_all(store) == before
        if process.returncode == 0:
            break
    assert kills["while writing"] >= 1, kills
    report = compact(store, at(200), CompactPolicy(grace_seconds=0))
    assert not report.busy
    assert not list(tmp_path.rglob("*.tmp"))
    assert len(parts(store)) == len({p.parent for p in parts(store)})
    assert hunt_all(store) == before
