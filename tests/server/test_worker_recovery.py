"""After an error it recovers from, the worker detects again from the committed position: its
correlation windows must start again too, or the batches it sees twice are counted twice.

A real worker over a real SQLite spool and state store with the starter pack's SSH rules: six
failed passwords on one host (under the password-guessing threshold of ten), then a batch of a
unit the state store does not know (it fails, is retried from the committed position twice,
then set aside as a dead letter), then a failed password ten minutes later that closes the
first window. Six is not ten: no password-guessing alert for that host, however many times the
six were read; and one, counted once, for a host that did fail ten times.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from vedette.server.config import ServeConfig
from vedette.server.rules import correlator_factory, load_rules
from vedette.server.state_ops import PipelineState
from vedette.server.worker import Worker
from vedette.store.eventstore import ParquetEventStore
from vedette.store.spool import SqliteSpool
from vedette.store.state.db import open_state
from vedette.store.state.models import Alert
from vedette.store.state.units import add_unit

pytestmark = pytest.mark.embedded_only("no centre: the worker's error path in-process")

STARTER = Path(__file__).resolve().parents[2] / "src" / "vedette" / "rulepacks" / "starter"
GUESSING = "lnx_sshd_password_guessing"


def _failed(second: int, minute: int = 0, host: str = "web1") -> bytes:
    return (
        f"<38>Dec  7 10:{minute:02d}:{second:02d} {host} sshd[4242]: Failed password for root "
        f"from 203.0.113.9 port {40000 + second} ssh2"
    ).encode()


def test_an_error_restarts_correlation_instead_of_counting_twice(tmp_path: Path) -> None:
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with state.session() as session:
        add_unit(session, name="hq", parent=None)
        session.commit()
    spool = SqliteSpool(tmp_path / "spool.db", high_water_events=10**6)
    # web1: six, under the threshold; web2: ten, over it (the rule does fire here).
    spool.append("hq", "syslog", [_failed(s) for s in range(1, 7)] +
                 [_failed(s, host="web2") for s in range(1, 11)])  # fmt: skip
    spool.append("ghost", "syslog", [_failed(30)])  # no such unit: fails three times
    last = spool.append("hq", "syslog", [_failed(0, minute=10)]).seq
    rules = load_rules(ServeConfig(home=tmp_path / "home", rule_paths=[STARTER]))
    worker = Worker(
        spool,
        ParquetEventStore(tmp_path / "events"),
        PipelineState(state, dedup_window_seconds=600),
        rules.detector,
        correlator_factory=correlator_factory(rules.detector),
        # Nothing committed before the failing batch: each retry detects the six again.
        alert_commit_seconds=60.0,
    )
    worker.start()
    try:
        assert worker.wait_processed(last, timeout=60)
    finally:
        worker.stop()
        spool.close()
    assert worker.stats.dead_letters == 1
    assert worker.stats.errors >= 2  # two retries before the batch was set aside
    assert worker.stats.correlation_restarts >= 2
    with state.session() as session:
        guessing = [
            (alert.host, alert.count)
            for alert in session.scalars(select(Alert))
            if alert.rule_id == _rule_id(GUESSING)
        ]
    assert guessing == [("web2", 1)]


def _rule_id(name: str) -> str:
    for path in STARTER.glob(f"{name}.yml"):
        for line in path.read_text().splitlines():
            if line.startswith("id: "):
                return line.removeprefix("id: ").strip()
    raise AssertionError(name)
