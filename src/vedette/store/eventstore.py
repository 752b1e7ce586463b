"""Events kept for hunting: Parquet files partitioned by unit and day, read by DuckDB.

Layout under ``root``::

    unit=<quoted unit>/day=YYYY-MM-DD/part-<first_seq:016d>-<last_seq:016d>.parquet

The unit is quoted with ``urllib.parse.quote(safe="")``, so no unit name can step outside its
folder. ``first_seq``/``last_seq`` are the spool range of the :meth:`ParquetEventStore.write`
call that produced the file: writing the same range again yields the same names (overwrite),
and after a crash :meth:`ParquetEventStore.discard_after` removes what was written past the
pipeline's committed position. Each file is written to a hidden temporary name, fsync'd,
renamed and its folder fsync'd, so a reader never sees half a file.

The ``day`` of an event is the UTC date of its own time, or of its receive time when it has
none. One writer at a time (the pipeline); readers may run concurrently.

The scale-out workers name their files ``part-<first>-<last>-p<N>.parquet`` (partition ``N``,
:mod:`vedette.server.partitions`); :class:`PartName` reads both forms. The compactor
(:mod:`vedette.store.compact`) merges a partition's consecutive files of one folder into one
file named for the whole range, then deletes the sources: while both exist, every reader here
sees only the merged one, because a file whose range another file of the same partition and
folder covers is hidden (:func:`visible`). So a hunt never counts an event twice.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from vedette.events import Event

__all__ = [
    "EVENTS_SCHEMA",
    "EventRow",
    "ParquetEventStore",
    "PartName",
    "event_row",
    "events_table",
    "visible",
]

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("unit", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC")),
        pa.field("day", pa.string(), nullable=False),
        pa.field("host", pa.string()),
        pa.field("product", pa.string()),
        pa.field("service", pa.string()),
        pa.field("category", pa.string()),
        pa.field("services", pa.list_(pa.string())),
        pa.field("categories", pa.list_(pa.string())),
        pa.field("source_format", pa.string()),
        pa.field("record_id", pa.int64()),
        pa.field("fields", pa.string()),
        pa.field("raw", pa.string()),
    ]
)
"""Columns of a stored event; ``fields`` is the event's fields as a JSON object string."""

_PART = re.compile(r"part-(\d{16})-(\d{16})\.parquet")
_NAME = re.compile(r"part-(\d{16})-(\d{16})(?:-p(\d+))?\.parquet")
_DAY = re.compile(r"day=(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True, slots=True)
class PartName:
    """What a stored file's name says: its spool range and the partition that wrote it.

    ``partition`` is None for the embedded writer (``part-<first>-<last>.parquet``) and ``N``
    for a scale-out worker's partition (``part-<first>-<last>-p<N>.parquet``).
    """

    first: int
    last: int
    partition: int | None = None

    @classmethod
    def parse(cls, name: str) -> PartName | None:
        """The parts of a file name, or None when it is not a stored file's name."""
        match = _NAME.fullmatch(name)
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]), None if match[3] is None else int(match[3]))

    @property
    def name(self) -> str:
        """The file name (the inverse of :meth:`parse`)."""
        suffix = "" if self.partition is None else f"-p{self.partition}"
        return f"part-{self.first:016d}-{self.last:016d}{suffix}.parquet"

    def covers(self, other: PartName) -> bool:
        """True when ``other`` is another file of the same partition inside this range."""
        return (
            self.partition == other.partition
            and self.first <= other.first
            and other.last <= self.last
            and (self.first, self.last) != (other.first, other.last)
        )


def visible(paths: Iterable[Path]) -> list[Path]:
    """``paths`` without the files another of them covers (same folder and partition).

    A merged file and its sources both exist between the compactor's rename and its deletion
    of the sources; readers take the merged one only. Order is kept; unknown names stay.
    """
    paths = list(paths)
    groups: dict[tuple[Path, int | None], list[tuple[PartName, Path]]] = {}
    for path in paths:
        part = PartName.parse(path.name)
        if part is not None:
            groups.setdefault((path.parent, part.partition), []).append((part, path))
    hidden: set[Path] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        # By first ascending, widest first: a file is covered exactly when an earlier one
        # reaches at least as far.
        members.sort(key=lambda m: (m[0].first, -m[0].last))
        reach = -1
        for part, path in members:
            if part.last <= reach:
                hidden.add(path)
            reach = max(reach, part.last)
    return [p for p in paths if p not in hidden] if hidden else paths


@dataclass(slots=True)
class EventRow:
    """One event as stored: ``seq`` is its spool batch, times are aware UTC."""

    seq: int
    unit: str
    time: datetime | None
    host: str | None
    product: str | None
    services: tuple[str, ...]
    categories: tuple[str, ...]
    source_format: str | None
    record_id: int | None
    fields: dict[str, Any]
    raw: str | None
    received: datetime = field(default_factory=lambda: datetime.now(UTC))


def event_row(
    event: Event, *, seq: int, unit: str, received: datetime, raw: str | None = None
) -> EventRow:
    """The stored form of a normalised event that arrived in spool batch ``seq``."""
    source = event.source
    return EventRow(
        seq=seq,
        unit=unit,
        time=event.timestamp,
        host=event.host,
        product=event.logsource.product,
        # Sorted once, by events_table, for every row of a write.
        services=tuple(event.logsource.services),
        categories=tuple(event.logsource.categories),
        source_format=None if source is None else source.format,
        record_id=None if source is None else source.record_id,
        fields=event.fields,
        raw=raw,
        received=received,
    )


def _utc(moment: datetime) -> datetime:
    # A naive time is taken as UTC, the readers' convention. Most times already are UTC (the
    # readers make them so): astimezone is the costly part of building a table, so skip it.
    zone = moment.tzinfo
    if zone is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if zone is None else moment.astimezone(UTC)


def events_table(rows: Sequence[EventRow]) -> pa.Table:
    """Build the Arrow table :meth:`ParquetEventStore.write` takes (schema ``EVENTS_SCHEMA``)."""
    times = [None if r.time is None else _utc(r.time) for r in rows]
    # Most events have one service and one category or none: only a longer tuple needs sorting.
    services = [sorted(s) if len(s) > 1 else list(s) for s in (r.services for r in rows)]
    categories = [sorted(c) if len(c) > 1 else list(c) for c in (r.categories for r in rows)]
    option = orjson.OPT_NON_STR_KEYS
    day_names: dict[date, str] = {}
    days: list[str] = []
    for t, r in zip(times, rows, strict=True):
        day = (t if t is not None else _utc(r.received)).date()
        name = day_names.get(day)
        if name is None:
            name = day_names[day] = day.isoformat()
        days.append(name)
    columns: dict[str, list[Any]] = {
        "seq": [r.seq for r in rows],
        "unit": [r.unit for r in rows],
        "time": times,
        "day": days,
        "host": [r.host for r in rows],
        "product": [r.product for r in rows],
        "service": [s[0] if s else None for s in services],
        "category": [c[0] if c else None for c in categories],
        "services": services,
        "categories": categories,
        "source_format": [r.source_format for r in rows],
        "record_id": [r.record_id for r in rows],
        "fields": [orjson.dumps(r.fields, option=option, default=str).decode() for r in rows],
        "raw": [r.raw for r in rows],
    }
    return pa.Table.from_pydict(columns, schema=EVENTS_SCHEMA)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(path: Path) -> float:
    """Modification time, 0 for a file deleted meanwhile (the compactor's sources)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _seq_range(path: Path) -> tuple[int, int] | None:
    match = _PART.fullmatch(path.name)
    return (int(match[1]), int(match[2])) if match else None


class ParquetEventStore:
    """Parquet files partitioned by unit and day under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def unit_dir(self, unit: str) -> Path:
        """The folder of one unit (quoted, so a unit name cannot leave ``root``)."""
        return self.root / f"unit={quote(unit, safe='')}"

    def write(self, table: pa.Table, first_seq: int, last_seq: int) -> int:
        """Write the events of spool range [first_seq, last_seq], one file per (unit, day).

        Durable on return (each file and its folder fsync'd). Returns the rows written.
        """
        if table.num_rows == 0:
            return 0
        table = table.select(EVENTS_SCHEMA.names).cast(EVENTS_SCHEMA)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(
            zip(table.column("unit").to_pylist(), table.column("day").to_pylist(), strict=True)
        ):
            groups.setdefault(key, []).append(i)
        name = f"part-{first_seq:016d}-{last_seq:016d}.parquet"
        for (unit, day), indices in groups.items():
            folder = self.unit_dir(unit) / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp"
            with tmp.open("wb") as f:
                pq.write_table(table.take(indices), f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
            _fsync_dir(folder)
        return int(table.num_rows)

    def _parts(self, unit_dirs: Iterable[Path] | None = None) -> list[Path]:
        dirs = unit_dirs if unit_dirs is not None else sorted(self.root.glob("unit=*"))
        return [p for d in dirs for p in sorted(d.glob("day=*/part-*.parquet"))]

    def covering(self, path: Path) -> Path | None:
        """The file that now holds the events of ``path``, a stored file that is gone.

        The compactor merged it: a file of the same folder and partition covers its range and
        holds exactly its rows among those with ``seq`` in that range. None when nothing covers
        it (retention removed the day).
        """
        gone = PartName.parse(path.name)
        if gone is None:
            return None
        for candidate in visible(sorted(path.parent.glob("part-*.parquet"))):
            part = PartName.parse(candidate.name)
            if part is not None and part.covers(gone):
                return candidate
        return None

    def discard_after(self, seq: int) -> int:
        """Delete files whose last_seq > ``seq`` (written, never committed); the count removed.

        Leftover temporary files of an interrupted write go too.
        """
        removed = 0
        for tmp in self.root.glob("unit=*/day=*/.part-*.tmp"):
            tmp.unlink(missing_ok=True)
        for path in self._parts():
            span = _seq_range(path)
            if span is not None and span[1] > seq:
                path.unlink(missing_ok=True)
                _fsync_dir(path.parent)
                removed += 1
        return removed

    def last_seq(self) -> int:
        """Highest last_seq of any stored file (0 when none)."""
        spans = (_seq_range(p) for p in self._parts())
        return max((s[1] for s in spans if s is not None), default=0)

    def counts(self) -> dict[str, int]:
        """Rows stored per unit, from Parquet footers (no data read)."""
        out: dict[str, int] = {}
        for unit_dir in sorted(self.root.glob("unit=*")):
            unit = unquote(unit_dir.name.removeprefix("unit="))
            rows = 0
            for path in visible(self._parts([unit_dir])):
                try:
                    rows += pq.read_metadata(path).num_rows
                except FileNotFoundError:
                    # Merged away since the listing: its rows are in the merged file, which
                    # this listing hid it behind or which the next count sees.
                    continue
            if rows:
                out[unit] = rows
        return out

    def days(self, unit: str) -> list[str]:
        """Days (YYYY-MM-DD) holding events of ``unit``, oldest first."""
        return sorted(
            m[1]
            for d in self.unit_dir(unit).glob("day=*")
            if (m := _DAY.fullmatch(d.name)) and any(d.glob("part-*.parquet"))
        )

    def apply_retention(self, days: int, now: datetime | None = None) -> int:
        """Delete day partitions older than ``days`` days before ``now``'s UTC date.

        With ``days=30`` on 2024-06-30, 2024-05-31 is kept and 2024-05-30 goes. A partition is
        kept while any of its files was written within the retention period: events of an old
        day sent today (a forwarder catching up, evidence replayed for a hunt) stay ``days``
        days after they arrived, not zero. Returns the number of day partitions removed.
        """
        moment = _utc(now or datetime.now(UTC))
        today = moment.date()
        cutoff = (today - timedelta(days=days)).isoformat()
        written_cutoff = (moment - timedelta(days=days)).timestamp()
        removed = 0
        for unit_dir in sorted(self.root.glob("unit=*")):
            for day_dir in sorted(unit_dir.glob("day=*")):
                match = _DAY.fullmatch(day_dir.name)
                # A merged file keeps its newest source's modification time (the compactor
                # sets it), so compaction never makes an old day look recently written.
                recent = any(_mtime(p) > written_cutoff for p in day_dir.iterdir())
                if match and match[1] < cutoff and not recent:
                    shutil.rmtree(day_dir)
                    removed += 1
            if not any(unit_dir.iterdir()):
                unit_dir.rmdir()
        if removed:
            _fsync_dir(self.root)
        return removed

    def files(
        self,
        units: Iterable[str],
        time_from: datetime | None = None,
        time_to: datetime | None = None,
    ) -> list[Path]:
        """Files of ``units`` whose day can hold events in [time_from, time_to]."""
        low: date | None = None if time_from is None else _utc(time_from).date()
        high: date | None = None if time_to is None else _utc(time_to).date()
        out: list[Path] = []
        for unit in sorted(set(units)):
            for day in self.days(unit):
                d = date.fromisoformat(day)
                if (low is None or d >= low) and (high is None or d <= high):
                    folder = self.unit_dir(unit) / f"day={day}"
                    out.extend(visible(sorted(folder.glob("part-*.parquet"))))
        return out
