"""The Zircolite way, measured: pySigma's SQLite backend over an in-memory table of flat events.

Runs inside ``bench/.venv-sqlite`` (pySigma + pysigma-backend-sqlite only), started by
``bench/bench_engine.py``. It converts every rule file to SQL, loads the flattened events (one
JSON object per line) into one in-memory ``logs`` table with a TEXT COLLATE NOCASE column per
field, as Zircolite does, then times running every query. Prints one JSON object on stdout.

Times are CPU seconds of this (single-threaded) process, so that a loaded machine does not
inflate them. Zircolite runs its Windows ruleset on every event (its "generic" rulesets carry no
logsource conditions), and so does this runner: no processing pipeline, the rules' own field
names.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

_NO_COLUMN = re.compile(r"no such column: (.+)$")


def convert_rules(paths: list[Path]) -> tuple[list[tuple[str, str]], dict[str, int], float]:
    """(rule id, SQL) for every rule that converts; error counts by reason; seconds taken."""
    backend = sqliteBackend()
    queries: list[tuple[str, str]] = []
    errors: dict[str, int] = {}
    started = time.process_time()
    for path in paths:
        try:
            collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"))
            rules = [r for r in collection.rules if isinstance(r, SigmaRule)]
            for rule in rules:
                for sql in backend.convert_rule(rule):
                    queries.append((str(rule.id), str(sql)))
        except Exception as error:  # any failure = "does not convert", by exception type
            reason = type(error).__name__
            errors[reason] = errors.get(reason, 0) + 1
    return queries, errors, time.process_time() - started


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def load_events(path: Path) -> tuple[sqlite3.Connection, int, float]:
    """An in-memory database with the events in table ``logs``; rows and seconds taken."""
    started = time.process_time()
    events = [json.loads(line) for line in path.open(encoding="utf-8")]
    # SQLite column names are case-insensitive ("ProcessID" and "ProcessId" are one column):
    # the first spelling seen names the column, and each event fills it from either.
    columns: dict[str, str] = {}
    for event in events:
        for name in event:
            columns.setdefault(name.lower(), name)
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, _regexp, deterministic=True)
    names = list(columns.values())
    rows = []
    for event in events:
        by_lower: dict[str, Any] = {}
        for name, value in event.items():
            by_lower.setdefault(name.lower(), value)
        rows.append([_text(by_lower.get(n.lower())) for n in names])
    column_sql = ", ".join(f'"{n}" TEXT COLLATE NOCASE' for n in names)
    db.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY, {column_sql})")
    placeholders = ", ".join("?" for _ in names)
    quoted = ", ".join(f'"{n}"' for n in names)
    db.executemany(
        f"INSERT INTO logs ({quoted}) VALUES ({placeholders})",
        rows,
    )
    db.commit()
    return db, len(events), time.process_time() - started


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regexp(pattern: str, value: Any) -> bool:
    if value is None:
        return False
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = _REGEX_CACHE[pattern] = re.compile(pattern)
    return compiled.search(str(value)) is not None


def prepare(db: sqlite3.Connection, queries: list[tuple[str, str]]) -> int:
    """Add the (empty) columns that queries name but no event has, so every query runs."""
    added = 0
    for _, sql in queries:
        while True:
            try:
                db.execute("EXPLAIN " + sql)
                break
            except sqlite3.OperationalError as error:
                missing = _NO_COLUMN.search(str(error))
                if not missing:
                    break
                db.execute(f'ALTER TABLE logs ADD COLUMN "{missing.group(1)}" TEXT COLLATE NOCASE')
                added += 1
    return added


def run_queries(
    db: sqlite3.Connection, queries: list[tuple[str, str]]
) -> tuple[dict[str, list[int]], int, float]:
    """Matched events (0-based line numbers of the events file) per rule id, failed queries,
    seconds taken."""
    matches: dict[str, list[int]] = {}
    failed = 0
    started = time.process_time()
    for rule_id, sql in queries:
        try:
            rows = db.execute(sql).fetchall()
        except sqlite3.Error:
            failed += 1
            continue
        if rows:  # the first column of `SELECT *` is row_id, numbered from 1 in file order
            matches.setdefault(rule_id, []).extend(row[0] - 1 for row in rows)
    return matches, failed, time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=Path, required=True, help="file listing rule paths")
    parser.add_argument("--events", type=Path, required=True, help="flat events, JSON lines")
    args = parser.parse_args()
    paths = [Path(p) for p in args.rules.read_text(encoding="utf-8").split("\n") if p]
    queries, errors, convert_s = convert_rules(paths)
    db, events, load_s = load_events(args.events)
    added = prepare(db, queries)
    matches, failed, query_s = run_queries(db, queries)
    report = {
        "rule_files": len(paths),
        "rules_converted": len({rule_id for rule_id, _ in queries}),
        "queries": len(queries),
        "conversion_errors": errors,
        "convert_seconds": convert_s,
        "events": events,
        "load_seconds": load_s,
        "columns_added": added,
        "query_seconds": query_s,
        "queries_failed": failed,
        "matches": matches,
        "python": sys.version.split()[0],
    }
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
