"""PostgreSQL restarted mid-stream under sustained ingest from a retrying client, with the
whole scale-out set running (api, two workers, scheduler, notifier). While it is down the api
answers 503 with Retry-After (never a traceback), the workers and the lease loops wait and
retry; once it is back: every acknowledged event stored once, no alert duplicated (detections
equal to the same events matched in-process, no two alerts of the same detections), no dead
letter, and every process still running and stopping cleanly."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from scalekit import Cluster
from test_faults import _acked, _check, _senders, _setup, _wait_until, clusters  # noqa: F401

from pgserver import PostgresServer


@pytest.fixture
def own_postgres(work_dir: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test alone (the test stops and starts it)."""
    server = PostgresServer(work_dir / "postgres")
    try:
        server.init().start()
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop("immediate")


def _database(server: PostgresServer) -> str:
    name = f"vf_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def test_postgres_restarted_mid_stream_loses_and_doubles_nothing(
    work_dir: Path,
    nats_server: str,
    own_postgres: PostgresServer,
    clusters: list[Cluster],  # noqa: F811
) -> None:
    database = _database(own_postgres)
    cluster, batches, tokens, analyst = _setup(work_dir, nats_server, database, clusters, 800)
    admin = cluster.token("hq", "admin")
    cluster.start(workers=2)
    cluster.wait_spread()
    cluster.wait_scheduler()
    senders = _senders(cluster, batches, tokens)
    total = sum(len(b) for b in batches.values())
    assert _wait_until(lambda: _acked(senders) >= total // 3, 40)
    own_postgres.stop("fast")  # every session ended, as a restart or failover does
    assert _acked(senders) < total, "PostgreSQL was stopped after the stream, not in it"
    # Down until the clients have met it (the api refuses with 503 rather than acknowledging)
    # and for longer than a lease: the workers stop their partitions and the scheduler its
    # duties, so the restart exercises the claims as well as the commits.
    assert _wait_until(lambda: any(s.answers[503] for s in senders), 60), cluster.logs()
    assert _wait_until(
        lambda: (
            all("stopping workers" in w.log() for w in cluster.workers)
            and "stopping the duties" in cluster.schedulers[0].log()
        ),
        60,
    ), cluster.logs()
    own_postgres.start()  # same data folder, same port
    for sender in senders:
        sender.join()
    answers = {code for s in senders for code in s.answers}
    assert answers <= {200, 202, 503}, answers  # no 500: no traceback reached a client
    _check(cluster, analyst, batches, work_dir)
    # A fingerprint may have several alerts (detections a dedup window apart), never two of
    # the same detections (a replay committed twice).
    with psycopg.connect(database) as conn:
        doubled = conn.execute(
            "SELECT unit_id, fingerprint, first_seen, count(*) FROM alerts "
            "GROUP BY unit_id, fingerprint, first_seen HAVING count(*) > 1"
        ).fetchall()
    assert doubled == []
    with cluster.api.client(admin) as http:
        assert http.get("/api/v1/deadletters").json()["items"] == []
    assert all(p.alive() for p in cluster.processes()), cluster.logs()
    cluster.wait_scheduler()
    assert cluster.stop_all() == [0] * 5, cluster.logs()
