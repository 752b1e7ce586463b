"""Stalls are said where they happen: the worker's slow steps and the api event loop's stalls.

A pause of the worker or of the api's loop is latency for every unit; these reports are how an
operator (and the serve benchmark) finds where it was. The worker runs for real here: a SQLite
spool, a state store, a Parquet store and a Sigma rule that fires.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import orjson
import pytest

from vedette.server.config import ServeConfig
from vedette.server.loop_watch import LoopWatch
from vedette.server.rules import load_rules
from vedette.server.state_ops import PipelineState
from vedette.server.worker import Worker
from vedette.store.eventstore import ParquetEventStore
from vedette.store.spool import SqliteSpool
from vedette.store.state.db import open_state
from vedette.store.state.units import add_unit

pytestmark = pytest.mark.embedded_only("no centre: the worker and the loop watch in-process")

RULE = """
title: Whoami run
id: 8f2a9e6c-1c55-4a8e-9d3b-6b0f1d2c3e4a
level: medium
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|endswith: '\\\\whoami.exe'}
  condition: selection
"""


def _event(n: int) -> bytes:
    return orjson.dumps(
        {
            "Event": {
                "System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
                           "Computer": f"ws-{n}", "TimeCreated": {"#attributes": {
                               "SystemTime": "2026-12-07T10:00:00Z"}}},
                "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "User": f"u{n}"},
            }
        }
    )  # fmt: skip


def _run_worker(tmp_path: Path, slow_step_seconds: float) -> tuple[Worker, int]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(RULE)
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with state.session() as session:
        add_unit(session, name="hq", parent=None)
        session.commit()
    spool = SqliteSpool(tmp_path / "spool.db", high_water_events=10**6)
    last = spool.append("hq", "json", [_event(n) for n in range(50)]).seq
    detector = load_rules(ServeConfig(home=tmp_path / "home", rule_paths=[rules])).detector
    worker = Worker(spool, ParquetEventStore(tmp_path / "events"),
                    PipelineState(state, dedup_window_seconds=600), detector,
                    slow_step_seconds=slow_step_seconds)  # fmt: skip
    worker.start()
    try:
        assert worker.wait_processed(last, timeout=60)
    finally:
        worker.stop()
        spool.close()
    return worker, last


def test_worker_logs_each_step_over_the_slow_mark(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every step is "slow" at a mark of zero: each is logged with its name and duration.
    with caplog.at_level(logging.WARNING, logger="vedette.worker"):
        worker, last = _run_worker(tmp_path, 0.0)
    steps = {r.getMessage().split(" took ")[0] for r in caplog.records}
    assert {"worker step read", "worker step detect", "worker step store"} <= steps
    assert any(f"seq {last}-{last}" in r.getMessage() for r in caplog.records)
    assert worker.stats.slow_steps >= 3
    assert worker.stats.alerts_created == 50  # one per host: reporting changes nothing else


def test_steps_under_the_mark_are_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vedette.worker"):
        worker, _ = _run_worker(tmp_path, 60.0)
    assert worker.stats.slow_steps == 0
    assert worker.stats.alerts_created == 50
    assert not [r for r in caplog.records if " took " in r.getMessage()]


def test_loop_watch_reports_a_blocked_loop(caplog: pytest.LogCaptureFixture) -> None:
    watch = LoopWatch(tick=0.05, slow_seconds=0.5)

    async def scenario() -> None:
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.3)
        quiet = watch.worst_recent()
        time.sleep(0.7)  # a blocking call on the loop: what the watch is for
        await asyncio.sleep(0.2)
        task.cancel()
        assert quiet < 0.5

    with caplog.at_level(logging.WARNING, logger="vedette.server"):
        asyncio.run(scenario())
    assert 0.6 <= watch.worst_recent() < 2.0
    assert watch.slow_stalls == 1
    # Logged with its length (how late exactly depends on the machine's load).
    assert any(re.fullmatch(r"the event loop stalled \d+\.\d\d s", r.getMessage())
               for r in caplog.records)  # fmt: skip


def test_loop_watch_forgets_after_its_window() -> None:
    watch = LoopWatch(window_seconds=10.0)
    watch.note(100.0, 3.0)
    watch.note(105.0, 0.5)
    assert watch._recent[0][1] == 3.0
    watch.note(112.0, 0.1)  # the 3-second stall is now more than 10 s old
    assert max(s for _, s in watch._recent) == 0.5
