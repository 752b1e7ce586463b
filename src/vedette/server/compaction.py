"""Compaction of the event store as the centre runs it: committed positions from the state store.

:func:`compact_store` is the one call for every mode: the embedded centre's housekeeping, the
scale-out api (or scheduler) role's housekeeping, and ``vedette admin compact``. It reads each
partition's committed store position (``store`` embedded, ``store:p<N>`` per scale-out
partition) from the state database and hands them to :func:`vedette.store.compact.compact`,
which merges only files at or below them (see that module for why each step is safe).
"""

from __future__ import annotations

from pathlib import Path

from vedette.server.worker import position_names
from vedette.store.compact import CompactPolicy, CompactReport, compact
from vedette.store.eventstore import ParquetEventStore
from vedette.store.state.db import StateDB
from vedette.store.state.positions import get_position

__all__ = ["compact_store", "report_lines"]


def compact_store(
    store: ParquetEventStore | Path,
    state: StateDB,
    policy: CompactPolicy | None = None,
) -> CompactReport:
    """Merge the small committed Parquet files of every unit, day and partition of ``store``.

    Safe beside running workers, hunts and retro-hunts, and against a crash at any point;
    a second run while one holds the store's lock returns at once with ``busy`` set.
    """
    events = store if isinstance(store, ParquetEventStore) else ParquetEventStore(store)

    def committed(partition: int | None) -> int:
        _, name = position_names(partition)
        with state.session(readonly=True) as session:
            return get_position(session, name)

    return compact(events, committed, policy)


def report_lines(report: CompactReport) -> list[str]:
    """The run, for an operator's terminal or a log."""
    if report.busy:
        return ["another compaction holds the store's lock: nothing done"]
    saved = report.bytes_in - report.bytes_out
    lines = [
        f"{report.files_merged:,} files merged into {report.merges:,} "
        f"({report.bytes_in:,} -> {report.bytes_out:,} bytes, {saved:,} saved; "
        f"{report.rows:,} rows) in {report.folders:,} unit-day folders, {report.seconds:.1f} s",
        f"{report.sources_removed:,} merged sources removed, "
        f"{report.tmp_removed:,} leftovers of an interrupted run removed",
    ]
    lines += [f"skipped: {reason}" for reason in report.skipped]
    return lines
