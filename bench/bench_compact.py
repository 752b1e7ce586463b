"""Compaction benchmark: files, bytes and hunting time before and after merging small files.

A store like a busy worker leaves it: one unit, ``--days`` days, ``--files`` files a day of
``--rows`` events each (a flush a second of a few hundred events), written with the event
store's own writer from the real OTRF atomic Windows recordings (``defense_evasion/host``,
normalised by the worker's decoder; bench_coordination.py's templates). Then, before and after
:func:`vedette.store.compact.compact` (128 MiB target, committed position past every file):

- files and bytes on disk;
- ``run_hunt`` (the locked-down DuckDB of ``POST /api/v1/hunt``), median of ``--repeat``:
  ``count(*) GROUP BY host`` over every day, and a JSON field filter
  (``fields->>'Image' ILIKE '%powershell%'``);
- ``store.counts()`` (Parquet footers of every file; ``/metrics`` calls it every 5 s).

    .venv/bin/python bench/bench_compact.py [--days 2] [--files 1000] [--rows 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_coordination import template_lines, template_table
from vedette.store.compact import CompactPolicy, compact
from vedette.store.eventstore import ParquetEventStore
from vedette.store.hunt import run_hunt

UNIT = "unit-a"
QUERIES = {
    "count(*) GROUP BY host, all days": "SELECT host, count(*) FROM events GROUP BY host",
    "fields->>'Image' ILIKE '%powershell%'": (
        "SELECT count(*) FROM events WHERE fields->>'Image' ILIKE '%powershell%'"
    ),
}


def fill(store: ParquetEventStore, template: pa.Table, days: int, files: int, rows: int) -> int:
    """``files`` writes a day of ``rows`` events each, seq numbered as flushes are."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    seq = 0
    step = 86_000_000 // (files * rows)
    for d in range(days):
        day = today - timedelta(days=days - 1 - d)
        for f in range(files):
            seq += 1
            start = (seq * rows) % template.num_rows
            table = template.take([(start + i) % template.num_rows for i in range(rows)])
            moment = day + timedelta(microseconds=f * rows * step)
            times = [moment + timedelta(microseconds=i * step) for i in range(rows)]
            table = table.set_column(
                table.schema.get_field_index("time"), "time",
                pa.array(times, pa.timestamp("us", "UTC")),
            )  # fmt: skip
            table = table.set_column(
                table.schema.get_field_index("day"), "day",
                pa.array([day.date().isoformat()] * rows),
            )  # fmt: skip
            store.write(table, seq, seq)
    return seq


def measure(store: ParquetEventStore, repeat: int) -> dict[str, float]:
    files = sorted(store.root.glob("unit=*/day=*/part-*.parquet"))
    out: dict[str, float] = {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
    }
    for name, sql in QUERIES.items():
        times = []
        for _ in range(repeat):
            clock = time.perf_counter()
            run_hunt(store, sql, units=[UNIT], max_rows=100_000, timeout_s=600)
            times.append(time.perf_counter() - clock)
        out[name] = statistics.median(times)
    clock = time.perf_counter()
    out["events"] = sum(store.counts().values())
    out["counts()"] = time.perf_counter() - clock
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--files", type=int, default=1000, help="files a day")
    parser.add_argument("--rows", type=int, default=300, help="events a file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    template = template_table(template_lines(), UNIT)
    with tempfile.TemporaryDirectory(prefix="bench-compact-") as folder:
        store = ParquetEventStore(Path(folder) / "events")
        clock = time.perf_counter()
        last = fill(store, template, args.days, args.files, args.rows)
        built = time.perf_counter() - clock
        before = measure(store, args.repeat)
        clock = time.perf_counter()
        report = compact(store, lambda partition: last, CompactPolicy(grace_seconds=0))
        took = time.perf_counter() - clock
        after = measure(store, args.repeat)
    assert before["events"] == after["events"]
    print(f"store: {int(before['events']):,} events, built in {built:.1f} s; compaction "
          f"{report.files_merged:,} files into {report.merges:,} in {took:.1f} s")  # fmt: skip
    print("| measure | before | after |\n|---|---|---|")
    for key in before:
        b, a = before[key], after[key]
        if key in ("files", "bytes", "events"):
            print(f"| {key} | {int(b):,} | {int(a):,} |")
        else:
            print(f"| {key} | {b * 1000:,.0f} ms | {a * 1000:,.0f} ms |")
    if args.json:
        args.json.write_text(
            json.dumps({"before": before, "after": after, "compact_seconds": took}, indent=1)
        )


if __name__ == "__main__":
    main()
