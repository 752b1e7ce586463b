"""Coordination benchmarks: retro-hunt throughput, hunting latency, alert-to-warning time.

Event templates are the real OTRF atomic Windows recordings in ``defense_evasion/host``
(Sysmon and Security events as NDJSON), normalised by the centre's own decoder
(``vedette.server.records.BatchDecoder``, the worker's path) and written with the event store's
own writer (``ParquetEventStore.write``), re-dated over the days wanted: no server ingest needed
to build a store of a million events.

1. Retro-hunt throughput (events/s) over ``--events`` stored events of one unit, through the
   real job runner (``vedette.server.retrohunt.RetroHuntRunner``, in process, SQLite state):
   one Sigma rule (SigmaHQ "Bypass UAC via CMSTP"), and a 10,000-indicator set (the recordings'
   own public address plus 9,999 generated ones). Against ``vedette scan`` over the same events
   as NDJSON (the same rule / the same indicators), wall time of the command.
2. Hunting latency on ``--store-events`` (1,000,000) events per unit over 30 days:
   ``count(*) group by host`` over one day and over the month, through ``run_hunt`` (the
   locked-down DuckDB of ``POST /api/v1/hunt``); median of 3.
3. Alert to warning with that store in two units: an intel alert in ``unit-a`` with the
   recordings' address as observable, then the coordinator's step for it
   (``Coordinator.process``: grouping, the hunt of every other unit over the 30-day look-back,
   the warning written) timed directly, not through a running centre.

    .venv/bin/python bench/bench_coordination.py [--events 200000] [--store-events 1000000]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from vedette.alerts.warning import Coordinator, WarningPolicy
from vedette.pipeline.detector import Detector
from vedette.server.records import BatchDecoder
from vedette.server.retrohunt import RetroHuntRunner, intel_detector, sigma_detector
from vedette.store.eventstore import ParquetEventStore, event_row, events_table
from vedette.store.hunt import run_hunt
from vedette.store.spool import SpoolBatch
from vedette.store.state.alerts import fingerprint, record_detection
from vedette.store.state.db import StateDB, open_state
from vedette.store.state.units import add_unit

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
RECORDINGS = DATASETS / "otrf-security-datasets/datasets/atomic/windows/defense_evasion/host"
RULE = DATASETS / "sigma/rules/windows/process_creation/proc_creation_win_uac_bypass_cmstp.yml"
INDICATOR = "168.63.129.16"


def template_lines() -> list[bytes]:
    """Every event line of the recordings (NDJSON)."""
    lines: list[bytes] = []
    for path in sorted(RECORDINGS.glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                lines += [line for line in archive.read(name).splitlines() if line.strip()]
    return lines


def template_table(lines: list[bytes], unit: str) -> pa.Table:
    """The lines normalised as the worker does, as an event-store table."""
    now = datetime.now(UTC)
    batch = SpoolBatch(seq=1, unit=unit, kind="json", received_at=now.timestamp(), records=lines)
    events = BatchDecoder().events(batch)
    return events_table([event_row(e, seq=1, unit=unit, received=now) for e in events])


def fill_store(
    store: ParquetEventStore, template: pa.Table, unit: str, total: int, days: int
) -> None:
    """``total`` events of ``unit`` spread evenly over the ``days`` days up to today."""
    per_day = total // days
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(days):
        day = today - timedelta(days=days - 1 - n)
        first = n * per_day  # the days continue through the templates, as the NDJSON does
        table = template.take([(first + i) % template.num_rows for i in range(per_day)])
        step = 86_000_000 // per_day  # microseconds between events
        table = table.set_column(
            table.schema.get_field_index("unit"), "unit", pa.array([unit] * per_day)
        )
        table = table.set_column(
            table.schema.get_field_index("day"), "day", pa.array([day.date().isoformat()] * per_day)
        )
        times = pa.array(
            [day + timedelta(microseconds=i * step) for i in range(per_day)],
            pa.timestamp("us", "UTC"),
        )
        table = table.set_column(table.schema.get_field_index("time"), "time", times)
        store.write(table, n + 1, n + 1)


def new_state(folder: Path, units: list[str]) -> tuple[StateDB, int]:
    """A SQLite state store with ``units`` below a root ``hq``; the root's id."""
    state = open_state(f"sqlite:///{folder / 'state.db'}")
    with state.session() as session:
        root = add_unit(session, name="hq", parent=None)
        for unit in units:
            add_unit(session, name=unit, parent="hq")
        root_id = root.id
    return state, root_id


def indicator_feed(count: int) -> str:
    """``count`` indicators: the recordings' own address plus generated public addresses."""
    rng = random.Random(7)
    values = {INDICATOR}
    while len(values) < count:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global:
            values.add(str(address))
    return "\n".join(sorted(values)) + "\n"


def time_job(runner: RetroHuntRunner, root: int, detector: Detector, unit: str) -> dict[str, float]:
    start = time.perf_counter()
    job = runner.submit(
        None,
        owner_unit_id=root,
        kind="sigma",
        title="bench",
        spec={},
        detector=detector,
        units=[unit],
        time_from=None,
        time_to=None,
    )
    runner.wait(job)
    seconds = time.perf_counter() - start
    from vedette.store.state.retrohunts import RetroHunt

    with runner.state.session(readonly=True) as session:
        row = session.get(RetroHunt, job)
        assert row is not None and row.status == "done", row and row.error
        return {"seconds": seconds, "events": row.events_read, "hits": row.hits}


def time_scan(events: Path, kind: str, *args: str) -> tuple[float, int]:
    """Wall time of ``vedette scan`` (warm rule cache) and its detections of ``kind``."""
    out = events.with_suffix(".scan.jsonl")
    command = [sys.executable, "-m", "vedette", "scan", str(events), *args, "--no-fold",
               "-f", "jsonl", "-o", str(out), "--no-progress", "--no-summary"]  # fmt: skip
    subprocess.run(command, capture_output=True, check=True)  # fills the compiled-rule cache
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    found = sum(1 for line in out.open() if f'"kind":"{kind}"' in line)
    return seconds, found


def bench_retrohunt(work: Path, lines: list[bytes], total: int) -> None:
    store = ParquetEventStore(work / "events")
    fill_store(store, template_table(lines, "unit-a"), "unit-a", total, 10)
    state, root = new_state(work, ["unit-a"])
    runner = RetroHuntRunner(state, store, workers=1)
    feed = indicator_feed(10_000)
    (work / "feed.txt").write_text(feed)
    ndjson = work / "events.ndjson"
    with ndjson.open("wb") as out:
        for i in range(total // 10 * 10):
            out.write(lines[i % len(lines)] + b"\n")
    try:
        sigma = time_job(runner, root, sigma_detector(RULE.read_text())[0], "unit-a")
        intel = time_job(runner, root, intel_detector(feed, "list")[0], "unit-a")
    finally:
        runner.stop()
        state.close()
    scan_sigma = time_scan(ndjson, "sigma", "--rules", str(RULE))
    scan_intel = time_scan(ndjson, "intel", "--rules", str(RULE), "--intel", str(work / "feed.txt"))
    n = sigma["events"]
    print(f"\n## retro-hunt throughput ({n:,.0f} stored events, 10 days, one unit)\n")
    print("| what | retro-hunt | events/s | hits | vedette scan (NDJSON) | events/s | detections |")
    print("|---|---|---|---|---|---|---|")
    for name, job, (scan, found) in (
        ("one Sigma rule", sigma, scan_sigma),
        ("10,000 indicators", intel, scan_intel),
    ):
        print(
            f"| {name} | {job['seconds']:.1f} s | {job['events'] / job['seconds']:,.0f} "
            f"| {job['hits']:,.0f} | {scan:.1f} s | {n / scan:,.0f} | {found:,} |"
        )


def bench_store(work: Path, lines: list[bytes], total: int) -> None:
    store = ParquetEventStore(work / "events")
    start = time.perf_counter()
    for unit in ("unit-a", "unit-b"):
        fill_store(store, template_table(lines, unit), unit, total, 30)
    built = time.perf_counter() - start
    size = sum(p.stat().st_size for p in (work / "events").rglob("*.parquet"))
    print(f"\n## store: {total:,} events per unit over 30 days, 2 units")
    print(f"built in {built:.1f} s, {size / 2**20:,.0f} MiB of Parquet\n")
    sql = "SELECT host, count(*) AS n FROM events GROUP BY host ORDER BY n DESC"
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    print("| hunting query (one unit) | rows scanned | median of 3 |")
    print("|---|---|---|")
    for name, since, until in (
        ("count by host, one day", today, today + timedelta(days=1) - timedelta(microseconds=1)),
        ("count by host, 30 days", today - timedelta(days=29), today + timedelta(days=1)),
    ):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            result = run_hunt(store, sql, units=["unit-a"], time_from=since, time_to=until)
            times.append(time.perf_counter() - t0)
        rows = sum(int(r[1]) for r in result.rows)
        print(f"| {name} | {rows:,} | {statistics.median(times) * 1000:,.0f} ms |")

    state, _ = new_state(work, ["unit-a", "unit-b"])
    try:
        with state.session() as session:
            from vedette.store.state.units import unit_by_name

            unit_a = unit_by_name(session, "unit-a").id
            now = datetime.now(UTC)
            alert, _ = record_detection(
                session,
                unit_id=unit_a,
                fingerprint=fingerprint("bench-intel", "unit-a", {"v": INDICATOR}),
                kind="intel",
                rule_id="bench-intel",
                rule_title="Known bad address",
                level="high",
                when=now,
                host="WORKSTATION5",
                observables=[{"type": "ip", "field": "DestinationIp", "value": INDICATOR}],
            )
            alert_id = alert.id
        coordinator = Coordinator(state, store, WarningPolicy(lookback_days=30))
        t0 = time.perf_counter()
        raised = coordinator.process(alert_id)
        seconds = time.perf_counter() - t0
        from vedette.store.state.warnings import EarlyWarning

        with state.session(readonly=True) as session:
            warning = session.query(EarlyWarning).one()
            total_hits = warning.hits_total
    finally:
        state.close()
    print(
        f"\nalert in unit-a to warning in unit-b (Coordinator.process, 30-day look-back over "
        f"{total:,} events): {seconds:.2f} s, {raised} warning, {total_hits:,} hits"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--store-events", type=int, default=1_000_000)
    parser.add_argument("--skip-store", action="store_true")
    args = parser.parse_args()
    lines = template_lines()
    print(f"templates: {len(lines):,} real events from {RECORDINGS}")
    with tempfile.TemporaryDirectory(prefix="vedette-bench-coord-") as folder:
        work = Path(folder)
        (work / "a").mkdir()
        bench_retrohunt(work / "a", lines, args.events)
        if not args.skip_store:
            (work / "b").mkdir()
            bench_store(work / "b", lines, args.store_events)


if __name__ == "__main__":
    main()
