"""Hostile input that once cost more than linear time (issue 15): time per unit of input.

Each case is measured at doubling sizes; a linear cost shows as a flat last column (time per
unit). Best of ``--repeat`` turns, process CPU time (the machine is shared).

  zip     a zip of N one-line syslog members (was reopened per member: 2,000 members, 45 s);
          the same files as a folder beside it
  json    a pretty-printed JSON array of N objects whose literals (null, true, false, \\uXXXX)
          fall across the 1 MiB read boundaries (read in full, no record repeated)
  value   one JSON value of N MiB in a pretty JSON stream (was re-parsed once per MiB read:
          quadratic), and one syslog line of N MiB (skipped in 8 MiB steps)
  regex   ``CommandLine|re: '(a+)+$'`` over a non-ASCII value of N characters through the
          engine (Python's re: minutes at 40; RE2 now)

    .venv/bin/python bench/bench_hostile.py [--repeat 3] [--quick] [--cases zip,json,value,regex]

A case whose read is not the expected one (events lost, a skip reported) says so at the end of
its row instead of stopping: run against an older ``src`` (``PYTHONPATH=/tmp/old/src``) to see
the figures from before (``--cases zip,value``: the regex case does not end there).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from vedette.detect import Engine
from vedette.events import Event, LogSource
from vedette.sources import ReadReport, read_events

LINE = b"Mar  1 10:00:00 host sshd[1]: Accepted password for root from 10.0.0.1 port 22 ssh2\n"
RULE = """
title: Backtracking
id: 0e7b3c5a-1b2c-4d5e-8f90-123456789ac1
logsource: {product: windows, category: process_creation}
detection:
    selection: {CommandLine|re: '(a+)+$'}
    condition: selection
"""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _best(turns: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(turns):
        start = _cpu()
        run()
        best = min(best, _cpu() - start)
    return best


def _read(path: Path) -> tuple[int, ReadReport]:
    report = ReadReport()
    count = sum(len(batch) for batch in read_events(path, report=report))
    return count, report


def _check(ok: bool, report: ReadReport) -> str:
    return "" if ok else f" NOT AS EXPECTED: {report.summary()}"


def _row(case: str, size: int, unit: str, seconds: float, note: str = "") -> None:
    per = seconds / size * 1e6
    print(f"{case:<22} {size:>9,} {unit:<8} {seconds:8.3f} s {per:10.2f} µs/{unit} {note}")


def bench_zip(work: Path, sizes: list[int], turns: int) -> None:
    for members in sizes:
        archive = work / f"m{members}.zip"
        folder = work / f"m{members}"
        folder.mkdir()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
            for i in range(members):
                handle.writestr(f"logs/{i:05}.log", LINE)
                (folder / f"{i:05}.log").write_bytes(LINE)
        count, report = _read(archive)
        note = _check(count == members and not report.skipped, report)
        _row("zip members", members, "member", _best(turns, lambda a=archive: _read(a)), note)

        def read_folder(f: Path = folder) -> None:
            for path in sorted(f.iterdir()):
                _read(path)

        _row("same files, folder", members, "file", _best(turns, read_folder))


def bench_json(work: Path, sizes: list[int], turns: int) -> None:
    for count in sizes:
        records = [
            {"n": i, "pad": "p" * (i % 97), "a": None, "b": True, "c": False, "d": "caf\u00e9"}
            for i in range(count)
        ]
        path = work / f"a{count}.json"
        path.write_text(json.dumps(records, indent=2))
        read, report = _read(path)
        note = _check(read == count and not report.skipped, report)
        mib = path.stat().st_size / (1 << 20)
        seconds = _best(turns, lambda p=path: _read(p))
        _row("pretty JSON array", count, "object", seconds, f"({mib:.0f} MiB){note}")


def bench_value(work: Path, sizes: list[int], turns: int) -> None:
    for mib in sizes:
        path = work / f"v{mib}.json"
        with path.open("w") as out:
            # pretty (not one object a line): read as a document stream, value by value
            out.write('{\n "n": 0\n}\n{"blob": "' + "x" * (mib << 20) + '"}\n{\n "n": 2\n}\n')
        read, report = _read(path)
        note = _check(read == 3 and not report.skipped, report)
        _row("one JSON value", mib, "MiB", _best(turns, lambda p=path: _read(p)), note)
        line = work / f"l{mib}.log"
        line.write_bytes(LINE + b"x" * (mib << 20) + b"\n" + LINE)
        read, report = _read(line)
        note = _check(read == 2 and report.skipped == {"line-too-long": 1}, report)
        _row("one syslog line", mib, "MiB", _best(turns, lambda p=line: _read(p)), note)


def bench_regex(work: Path, sizes: list[int], turns: int) -> None:
    rules = work / "rules"
    rules.mkdir()
    (rules / "bt.yml").write_text(RULE)
    engine = Engine.from_paths([rules], scanner="hyperscan")
    process = LogSource("windows", frozenset({"sysmon"}), frozenset({"process_creation"}))
    turn = itertools.count()
    for length in sizes:

        def run(length: int = length) -> None:
            # values never seen before, every turn: the value memo does not answer for them
            stamp = next(turn)
            events = [
                Event({"CommandLine": "é" + "a" * length + f"é{stamp}.{i}"}, logsource=process)
                for i in range(200)
            ]
            assert not engine.match(events)

        seconds = _best(turns, run)
        _row("(a+)+$ non-ASCII", length * 200, "char", seconds, f"({length:,} chars x 200)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--cases", default="zip,json,value,regex")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    try:
        scale = 1 if args.quick else 2
        if "zip" in cases:
            bench_zip(work, [500 * scale, 1000 * scale, 2000 * scale], args.repeat)
        if "json" in cases:
            bench_json(work, [10_000 * scale, 20_000 * scale, 40_000 * scale], args.repeat)
        if "value" in cases:
            bench_value(work, [6 * scale, 12 * scale, 24 * scale], args.repeat)
        if "regex" in cases:
            bench_regex(work, [40, 400, 4000, 40_000], args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
