"""The compactor: a partition's many small Parquet files of one unit and day merged into few.

Each writer (the embedded worker, or one scale-out partition's worker) flushes a file per unit
and day every second or 20,000 rows, so a busy day holds thousands of files; DuckDB and the
shared filesystem pay per file. :func:`compact` merges, in each ``unit=/day=`` folder and for
each partition apart, runs of consecutive files up to a target size (bytes, and optionally
rows) into one file named for the whole range (``part-<first>-<last>[-p<N>].parquet``, the
writer's own naming), so the writer's crash recovery still works on it.

Safety, step by step:

- **only committed files**: a file is merged only when its range ends at or below its
  partition's committed store position (``committed(partition)``). Recovery deletes files past
  that position, so a merged file, ending at or below it, is never cut; and the writer never
  writes at or below it again (it replays past it only).
- **one range, one partition**: a run is consecutive files of one partition in one folder, so
  the merged range holds no file of that partition that was not merged. Files of one partition
  in a folder never overlap; a folder where two do (not written by Vedette) is left alone.
- **atomic swap**: the merged file is written to ``.compact-<name>.tmp``, fsync'd, given the
  newest source's modification time (retention judges a day by when it was written), renamed
  and its folder fsync'd. From the rename on, readers hide the sources
  (:func:`~vedette.store.eventstore.visible`): nothing is counted twice. The sources are
  deleted once the merge is ``grace_seconds`` old (its rename time is the file's ctime; at
  once with a grace of 0), so a hunt that listed them just before the swap can still read
  them; a hunt that meets a deleted source lists again (:func:`~vedette.store.hunt.run_hunt`),
  a retro-hunt reads the source's rows from the covering file
  (:meth:`ParquetEventStore.covering`).
- **crash at any step**: a temporary file left over is deleted by the next run; a merged file
  whose sources are still there hides them and the next run deletes them.
- **one compactor at a time**: an exclusive ``flock`` on ``<root>/.compact.lock``; a run that
  finds it taken does nothing (``busy`` in its report).

Every run adds its figures to ``<root>/.compaction.json`` (replaced atomically), which
``/metrics`` of any process sharing the store reads (:func:`read_status`).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from vedette.store.eventstore import EVENTS_SCHEMA, ParquetEventStore, PartName, visible

log = logging.getLogger("vedette.compact")

__all__ = [
    "Committed",
    "CompactPolicy",
    "CompactReport",
    "compact",
    "read_status",
]

Committed = Callable[[int | None], int]
"""The committed store position of a partition (None: the embedded writer)."""

LOCK_NAME = ".compact.lock"
STATUS_NAME = ".compaction.json"
TMP_PREFIX = ".compact-"
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactPolicy:
    """How big a merged file may grow and how long merged sources stay for readers."""

    target_bytes: int = 128 * _MIB
    """A run stops growing before the sum of its files' sizes passes this."""
    target_rows: int | None = None
    """And before its rows pass this, when set."""
    min_files: int = 2
    """Fewer consecutive small files than this are left alone."""
    grace_seconds: float = 300.0
    """Merged sources are deleted by the first run this long after the merge."""
    row_group_rows: int = 122_880
    """Rows per row group of a merged file (DuckDB's own row group size)."""


@dataclass(slots=True)
class CompactReport:
    """What one run did."""

    started_at: float = 0.0
    seconds: float = 0.0
    busy: bool = False
    """Another compactor held the lock: this run did nothing."""
    folders: int = 0
    merges: int = 0
    """Merged files written."""
    files_merged: int = 0
    """Source files those merges replaced."""
    bytes_in: int = 0
    bytes_out: int = 0
    rows: int = 0
    sources_removed: int = 0
    """Covered sources deleted (their merge older than the grace period)."""
    tmp_removed: int = 0
    """Temporary files of an interrupted run deleted."""
    skipped: list[str] = field(default_factory=list)
    """Folders or files left alone, with the reason."""


@dataclass(slots=True)
class _File:
    path: Path
    part: PartName
    size: int
    mtime: float
    rows: int | None = None
    """From the footer, read once when the file is considered for a merge."""
    mergeable: bool = True


def compact(
    store: ParquetEventStore,
    committed: Committed,
    policy: CompactPolicy | None = None,
    *,
    now: float | None = None,
) -> CompactReport:
    """Merge the committed small files of every partition, unit and day (module docstring)."""
    policy = policy or CompactPolicy()
    report = CompactReport(started_at=time.time())
    clock = time.monotonic()
    with _lock(store.root) as held:
        if not held:
            report.busy = True
            return report
        report.tmp_removed = _remove_leftovers(store.root)
        positions: dict[int | None, int] = {}

        def position(partition: int | None) -> int:
            # Read once per run and partition: it only grows, so an early value is safe.
            if partition not in positions:
                positions[partition] = committed(partition)
            return positions[partition]

        for folder in sorted(store.root.glob("unit=*/day=*")):
            if folder.is_dir():
                report.folders += 1
                _compact_folder(folder, position, policy, report, now or time.time())
        report.seconds = time.monotonic() - clock
        _record(store.root, report)
    if report.merges or report.sources_removed or report.tmp_removed:
        log.info(
            "compaction: %d files merged into %d (%d -> %d bytes), %d sources removed in %.1f s",
            report.files_merged, report.merges, report.bytes_in, report.bytes_out,
            report.sources_removed, report.seconds,
        )  # fmt: skip
    return report


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[bool]:
    """Hold ``<root>/.compact.lock`` (True), or yield False when another run has it."""
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def _remove_leftovers(root: Path) -> int:
    """Temporary files of a run that died (the lock is ours: no run is writing them)."""
    removed = 0
    for tmp in root.glob(f"unit=*/day=*/{TMP_PREFIX}*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _compact_folder(
    folder: Path,
    position: Callable[[int | None], int],
    policy: CompactPolicy,
    report: CompactReport,
    now: float,
) -> None:
    by_partition: dict[int | None, list[_File]] = {}
    for path in sorted(folder.glob("part-*.parquet")):
        part = PartName.parse(path.name)
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if part is not None:
            by_partition.setdefault(part.partition, []).append(
                _File(path, part, stat.st_size, stat.st_mtime)
            )
    for partition, files in by_partition.items():
        shown = set(visible(f.path for f in files))
        live = sorted((f for f in files if f.path in shown), key=lambda f: f.part.first)
        upto = position(partition)
        report.sources_removed += _remove_covered(files, live, upto, policy.grace_seconds, now)
        if any(a.part.last >= b.part.first for a, b in itertools.pairwise(live)):
            report.skipped.append(f"{folder}: files of partition {partition} overlap")
            continue
        for run in _runs([f for f in live if f.part.last <= upto], policy, report):
            _merge(folder, run, policy, report)


def _remove_covered(
    files: list[_File], live: list[_File], upto: int, grace: float, now: float
) -> int:
    """Delete sources whose covering file is committed and was merged ``grace`` seconds ago.

    A cover past the committed position is not ours (a stalled worker's file, which recovery
    may still delete): what it hides stays.
    """
    removed = 0
    shown = {f.path for f in live}
    for source in files:
        if source.path in shown:
            continue
        cover = next((f for f in live if f.part.covers(source.part)), None)
        if cover is None or cover.part.last > upto:
            continue
        try:
            merged_at = cover.path.stat().st_ctime  # the rename (and utime) set it
        except FileNotFoundError:
            continue
        if now - merged_at >= grace:
            source.path.unlink(missing_ok=True)
            removed += 1
    if removed:
        _fsync_dir(files[0].path.parent)
    return removed


def _runs(files: list[_File], policy: CompactPolicy, report: CompactReport) -> list[list[_File]]:
    """Consecutive files grouped up to the targets; only groups worth a merge.

    A file already at the target, or one that cannot be merged, ends the group before it.
    """
    runs: list[list[_File]] = [[]]
    size = rows = 0
    for f in files:
        if f.size >= policy.target_bytes or not _mergeable(f, report):
            runs.append([])
            size = rows = 0
            continue
        count = f.rows or 0
        over_rows = policy.target_rows is not None and rows + count > policy.target_rows
        if runs[-1] and (size + f.size > policy.target_bytes or over_rows):
            runs.append([])
            size = rows = 0
        runs[-1].append(f)
        size += f.size
        rows += count
    return [r for r in runs if len(r) >= max(2, policy.min_files)]


def _mergeable(f: _File, report: CompactReport) -> bool:
    """Read the footer once: the row count, and whether the file has today's columns."""
    if f.rows is None:
        f.rows = 0
        try:
            meta = pq.read_metadata(f.path)
        except (OSError, pa.ArrowInvalid) as exc:
            report.skipped.append(f"{f.path}: unreadable ({exc})")
            f.mergeable = False
            return False
        f.rows = meta.num_rows
        if not meta.schema.to_arrow_schema().remove_metadata().equals(EVENTS_SCHEMA):
            # Another version's columns: a merge would have to choose; left as it is.
            report.skipped.append(f"{f.path}: columns differ from today's")
            f.mergeable = False
    return f.mergeable


def _merge(folder: Path, run: list[_File], policy: CompactPolicy, report: CompactReport) -> None:
    """Write the run's rows, in order, to one file named for its range; then swap it in."""
    merged = PartName(run[0].part.first, run[-1].part.last, run[0].part.partition)
    target = folder / merged.name
    if target.exists():
        report.skipped.append(f"{target}: already exists")
        return
    tmp = folder / f"{TMP_PREFIX}{merged.name}.tmp"
    expected = sum(f.rows or 0 for f in run)
    try:
        rows = _write_merged(tmp, run, policy.row_group_rows)
        if rows != expected or pq.read_metadata(tmp).num_rows != expected:
            raise OSError(f"{target}: merged {rows} rows, its sources hold {expected}")
        newest = max(f.mtime for f in run)
        os.utime(tmp, (newest, newest))
        os.replace(tmp, target)
        _fsync_dir(folder)
    except FileNotFoundError as exc:
        # A source went meanwhile (retention took the day): nothing merged.
        tmp.unlink(missing_ok=True)
        report.skipped.append(f"{folder}: {exc}")
        return
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.merges += 1
    report.files_merged += len(run)
    report.bytes_in += sum(f.size for f in run)
    report.bytes_out += target.stat().st_size
    report.rows += rows
    if policy.grace_seconds <= 0:
        # No reader to wait for (the centre is stopped, or a test): the sources go now.
        for source in run:
            source.path.unlink(missing_ok=True)
        _fsync_dir(folder)
        report.sources_removed += len(run)


def _write_merged(tmp: Path, run: list[_File], group_rows: int) -> int:
    """The sources' rows to ``tmp`` in row groups of ``group_rows``, fsync'd; rows written.

    Memory holds one row group, whatever the sources' total size.
    """
    rows = 0
    with tmp.open("wb") as out:
        writer = pq.ParquetWriter(out, EVENTS_SCHEMA, compression="zstd")
        pending: list[pa.RecordBatch] = []
        buffered = 0
        for source in run:
            for batch in pq.ParquetFile(source.path).iter_batches(batch_size=group_rows):
                pending.append(batch)
                buffered += batch.num_rows
                if buffered >= group_rows:
                    rows += _write_group(writer, pending, group_rows)
                    buffered = 0
        if pending:
            rows += _write_group(writer, pending, group_rows)
        writer.close()
        out.flush()
        os.fsync(out.fileno())
    return rows


def _write_group(writer: pq.ParquetWriter, pending: list[pa.RecordBatch], size: int) -> int:
    table = pa.Table.from_batches(pending, schema=EVENTS_SCHEMA)
    writer.write_table(table, row_group_size=size)
    pending.clear()
    return int(table.num_rows)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the status file /metrics reads ---------------------------------------------------------------

_TOTALS = ("merges", "files_merged", "bytes_in", "bytes_out", "rows", "sources_removed")


def _record(root: Path, report: CompactReport) -> None:
    """Add the run to the status file (under the lock, so no run's figures are lost)."""
    status = read_status(root)
    status["runs"] = int(status.get("runs", 0)) + 1
    for name in _TOTALS:
        status[name] = int(status.get(name, 0)) + int(getattr(report, name))
    last = asdict(report)
    last["skipped"] = last["skipped"][:20]
    status["last_run"] = last
    path = root / STATUS_NAME
    tmp = root / f".{STATUS_NAME}.tmp"
    tmp.write_bytes(orjson.dumps(status))
    os.replace(tmp, path)


def read_status(root: Path) -> dict[str, Any]:
    """Totals of every run on this store (``runs``, ``merges``, ``files_merged``, ``bytes_in``,
    ``bytes_out``, ``rows``, ``sources_removed``) and ``last_run`` (a report); {} before any."""
    try:
        loaded = orjson.loads((Path(root) / STATUS_NAME).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
