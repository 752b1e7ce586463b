"""The embedded worker's own cost per event: a pre-filled spool drained as fast as it goes.

``bench_serve.py`` measures the whole centre under load; this isolates the worker (decode,
detect, correlate, alert facts and commit, Parquet flush), the stage that sets the centre's
ceiling and its latency. It builds the same events as ``bench_serve.py`` (EVTX attack samples
as Winlogbeat/ECS and evtx_dump JSON, 90 %, loghub syslog, 10 %), appends them to a real
SQLite spool in 500-event batches, then runs a real :class:`~vedette.server.worker.Worker` over
a real state store and Parquet store with the full SigmaHQ Windows rules and times it until the
last batch is alerted and stored. Wall time and the process's CPU time are both reported.

    .venv/bin/python bench/bench_worker.py [--events 200000] [--cache DIR] [--profile FILE]

On a shared machine time is noisy; ``perf stat -e instructions:u`` around two runs with the
same ``--cache`` compares trees by the work done instead.

Compare two trees side by side by running it twice with ``PYTHONPATH=OTHER/src``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bench_serve  # noqa: E402  (the same events as the serve benchmark)
from vedette.server.config import ServeConfig  # noqa: E402
from vedette.server.rules import correlator_factory, load_rules  # noqa: E402
from vedette.server.state_ops import PipelineState  # noqa: E402
from vedette.server.worker import Worker  # noqa: E402
from vedette.store.eventstore import ParquetEventStore  # noqa: E402
from vedette.store.spool import SqliteSpool  # noqa: E402
from vedette.store.state.db import open_state  # noqa: E402
from vedette.store.state.units import add_unit  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace) -> dict[str, object]:
    """Fill, drain, measure."""
    windows = bench_serve.windows_lines(datetime.now(UTC))
    syslog = bench_serve.syslog_lines()
    with tempfile.TemporaryDirectory(prefix="vedette-bench-worker-") as tmp:
        config = ServeConfig(home=Path(tmp), rule_paths=[bench_serve.RULES_WINDOWS])
        paths = config.paths
        paths.root.mkdir(parents=True, exist_ok=True)
        if args.cache is not None:
            # Compiled rules kept between runs: the measured part is the drain either way.
            args.cache.mkdir(parents=True, exist_ok=True)
            paths.cache.symlink_to(args.cache.resolve(), target_is_directory=True)
        state = open_state(config.state_url)
        with state.session() as session:
            add_unit(session, name="centre", parent=None)
            add_unit(session, name="win", parent="centre")
            add_unit(session, name="lin", parent="centre")
            session.commit()
        spool = SqliteSpool(paths.spool_db, high_water_events=10**9)
        n_sys = args.events // 10
        n_win = args.events - n_sys
        appended = 0
        for unit, kind, lines, count in (
            ("win", "json", windows, n_win),
            ("lin", "syslog", syslog, n_sys),
        ):
            i = 0
            while i < count:
                take = min(args.batch, count - i)
                records = [lines[(i + k) % len(lines)] for k in range(take)]
                last = spool.append(unit, kind, records).seq
                appended += take
                i += take
        # Interleave is not needed: the worker's cost is per event, not per arrival order.
        load_started = time.perf_counter()
        rules = load_rules(config)
        load_seconds = time.perf_counter() - load_started
        worker = Worker(
            spool,
            ParquetEventStore(paths.events),
            PipelineState(state, dedup_window_seconds=config.dedup_window_seconds),
            rules.detector,
            correlator_factory=correlator_factory(rules.detector),
        )
        cpu0, wall0 = _cpu(), time.perf_counter()
        if args.profile:
            # cProfile sees one thread: run the worker's loop in this one, stopped by a watcher.
            worker.recover()
            watcher = threading.Thread(
                target=lambda: (worker.wait_processed(last, 3600), worker._stop.set())
            )
            watcher.start()
            profile = cProfile.Profile()
            profile.runcall(worker._run)
            profile.dump_stats(args.profile)
            done = True
        else:
            worker.start()
            done = worker.wait_processed(last, timeout=3600)
        wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
        worker.stop()
        spool.close()
        stats = worker.stats
        return {
            "events": appended,
            "rules": rules.facts.rules_loaded,
            "finished": done,
            "seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
            "events_per_s": round(appended / wall),
            "events_per_cpu_s": round(appended / cpu),
            "detections": stats.detections,
            "alerts_created": stats.alerts_created,
            "stored": stats.events_stored,
            "rule_load_seconds": round(load_seconds, 1),
        }


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--cache", type=Path, help="keep compiled rules here between runs")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the drain here")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
