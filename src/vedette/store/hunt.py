"""Hunting: one read-only SQL query over the stored events of the caller's units, in DuckDB.

The query sees one table, ``events`` (columns of :data:`~vedette.store.eventstore.EVENTS_SCHEMA`),
holding only the events of the allowed units within the time range. ``fields`` is the
event's fields as a JSON string, so DuckDB's JSON operators reach into it::

    SELECT time, host, fields->>'CommandLine' AS cmd
    FROM events
    WHERE fields->>'Image' ILIKE '%\\powershell.exe'

How the scope is kept:

- exactly one statement, and it must be a SELECT (``duckdb.extract_statements``); anything
  else is refused before DuckDB runs it;
- a fresh in-memory connection whose ``events`` view reads an explicit list of files: only
  the allowed units' partitions for the days of the range;
- before the user's SQL runs, the connection is locked: ``allowed_paths`` is that file list,
  external access, extension autoload/autoinstall and Python replacement scans are off, and
  ``lock_configuration`` stops any of it being undone. Reading another file (another unit's
  Parquet, ``/etc/passwd``), ``ATTACH``, ``COPY``, ``INSTALL``/``LOAD`` all fail;
- a timer interrupts a query that runs past ``timeout_s``; rows past ``max_rows`` are cut
  and the result says so.

The file list hides files the compactor merged (:func:`~vedette.store.eventstore.visible`), and
a query that meets a file deleted since the listing runs again on a fresh list.

Every refusal or failure is a :class:`HuntRefused` naming the reason, never a DuckDB error.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from vedette.errors import VedetteError
from vedette.store.eventstore import EVENTS_SCHEMA, ParquetEventStore

__all__ = ["HuntRefused", "HuntResult", "run_hunt"]


class HuntRefused(VedetteError):
    """A hunt query that was refused or failed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"hunt refused: {reason}")


@dataclass(slots=True)
class HuntResult:
    """Column names, rows of JSON-able values, and whether rows past the limit were cut."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _timestamp(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return f"TIMESTAMPTZ {_literal(moment.astimezone(dt.UTC).isoformat())}"


def _check_statement(sql: str) -> None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise HuntRefused(f"cannot parse the query: {exc}") from None
    if len(statements) != 1:
        raise HuntRefused(f"exactly one statement is allowed, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise HuntRefused(f"only SELECT is allowed, got {kind.name}")


def _events_view(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    time_from: dt.datetime | None,
    time_to: dt.datetime | None,
) -> None:
    """Create ``events`` over exactly ``files`` (or empty, with the same columns)."""
    if not files:
        con.register("events", EVENTS_SCHEMA.empty_table())
        return
    paths = ", ".join(_literal(str(p)) for p in files)
    where = []
    if time_from is not None:
        where.append(f"time >= {_timestamp(time_from)}")
    if time_to is not None:
        where.append(f"time <= {_timestamp(time_to)}")
    # An event without a time is kept when its day (the receive day) is in range: the file
    # list is already pruned to those days.
    condition = f" WHERE time IS NULL OR ({' AND '.join(where)})" if where else ""
    columns = ", ".join(f'"{name}"' for name in EVENTS_SCHEMA.names)
    con.execute(
        f"CREATE VIEW events AS SELECT {columns} FROM read_parquet([{paths}], "
        f"union_by_name = true, hive_partitioning = false){condition}"
    )


def _lock_down(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    allowed = ", ".join(_literal(str(p)) for p in files)
    for statement in (
        f"SET allowed_paths = [{allowed}]",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET python_enable_replacements = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def _jsonable(value: Any) -> Any:
    """A DuckDB value as something JSON can carry (times as ISO 8601 strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def run_hunt(
    store: ParquetEventStore,
    sql: str,
    *,
    units: Sequence[str],
    time_from: dt.datetime | None = None,
    time_to: dt.datetime | None = None,
    max_rows: int = 10_000,
    timeout_s: float = 30.0,
) -> HuntResult:
    """Run one SELECT over the events of ``units`` in [time_from, time_to] (see module doc).

    A file the compactor merged away between the listing and DuckDB opening it fails the
    query before any row is returned: the files are listed again and the query rerun, within
    the same time limit.
    """
    _check_statement(sql)
    deadline = time.monotonic() + timeout_s
    while True:
        files = store.files(units, time_from, time_to)
        left = deadline - time.monotonic()
        try:
            return _query(files, sql, time_from, time_to, max_rows, max(left, 0.1), timeout_s)
        except _FilesMoved:
            if time.monotonic() >= deadline:
                raise HuntRefused(f"query took longer than {timeout_s:g} s") from None
            time.sleep(0.05)  # the compactor is at work in these folders: let it finish


class _FilesMoved(Exception):
    """A listed file went before the query read it (compaction or retention)."""


def _query(
    files: list[Path],
    sql: str,
    time_from: dt.datetime | None,
    time_to: dt.datetime | None,
    max_rows: int,
    timeout_s: float,
    limit_s: float,
) -> HuntResult:
    """One attempt, interrupted after ``timeout_s`` (what is left of the caller's ``limit_s``)."""
    con = duckdb.connect(":memory:")
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        con.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    try:
        _events_view(con, files, time_from, time_to)
        _lock_down(con, files)
        timer.start()
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        fetched = cursor.fetchmany(max_rows + 1)
    except duckdb.Error as exc:
        if timed_out.is_set():
            raise HuntRefused(f"query took longer than {limit_s:g} s") from None
        if any(not p.exists() for p in files):
            raise _FilesMoved from None
        raise HuntRefused(str(exc).strip()) from None
    finally:
        timer.cancel()
        con.close()
    rows = [[_jsonable(v) for v in row] for row in fetched[:max_rows]]
    return HuntResult(columns, rows, len(fetched) > max_rows)
