"""Dead letters, embedded mode: a batch the worker keeps failing on is set aside after three
attempts with its reason, visible on GET /api/v1/deadletters, and the spool moves on."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from serverkit import add_token, make_centre

from vedette.store.spool import SqliteSpool

GOOD = b'{"EventID": 1, "Image": "C:\\\\Windows\\\\System32\\\\cmd.exe", "Computer": "WS1"}'


def test_a_poison_batch_is_dead_lettered_and_the_good_ones_after_it_are_stored(
    work_dir: Path,
) -> None:
    home = work_dir / "home"
    centre = make_centre(home)
    admin = add_token(home, "hq", "admin")
    branch_admin = add_token(home, "branch-a", "admin")
    spool = SqliteSpool(home / "spool" / "spool.db")
    try:
        poison = spool.append("branch-a", "json", [GOOD]).seq
        spool.append("branch-a", "json", [GOOD, GOOD])
    finally:
        spool.close()
    # A receive time no datetime can hold: the row is intact (its CRC covers the records)
    # but every decode of it raises, as a batch written by a buggy or newer writer might.
    with sqlite3.connect(home / "spool" / "spool.db") as conn:
        conn.execute("UPDATE batches SET received_at = 1e20 WHERE seq = ?", (poison,))
    centre.start()
    try:
        centre.wait_stored(admin, "branch-a", 2, timeout=60)
        with centre.client(admin) as http:
            items = http.get("/api/v1/deadletters").json()["items"]
        assert len(items) == 1, items
        dead = items[0]
        assert dead["seq"] == poison and dead["unit"] == "branch-a" and dead["records"] == 1
        assert dead["attempts"] == 3 and dead["source"] == "detect"
        assert "year" in dead["reason"] or "Overflow" in dead["reason"], dead["reason"]
        # Admins only; a unit admin sees its own unit's dead letters.
        with centre.client(branch_admin) as http:
            assert [d["seq"] for d in http.get("/api/v1/deadletters").json()["items"]] == [poison]
    finally:
        assert centre.stop() == 0, centre.log()
    # After a restart it is not set aside a second time (nor retried: the position moved on).
    centre.start()
    try:
        with centre.client(admin) as http:
            assert len(http.get("/api/v1/deadletters").json()["items"]) == 1
    finally:
        centre.kill()


def test_scale_out_a_batch_of_a_unit_missing_from_the_store_is_dead_lettered_not_retried(
    work_dir: Path, nats_server: str, database: str
) -> None:
    """Scale-out: a batch for a unit the state store does not hold can never commit; the worker
    sets it aside (after its attempts) with the reason, shown to the centre's admins only, and
    the good batches behind it in the same partition are stored."""
    from scalekit import Cluster

    from vedette.store.jetstream import JetStreamConfig, JetStreamSpool

    cluster = Cluster(work_dir, nats_server, database, rules=(), partitions=1)
    cluster.add_units([("hq", None), ("branch-a", "hq")])
    admin = cluster.token("hq", "admin")
    branch_admin = cluster.token("branch-a", "admin")
    ingest = cluster.token("branch-a", "ingest")
    cluster.start(workers=1, schedulers=0, notifiers=0)
    api = cluster.api
    try:
        cluster.wait_spread()
        # Published straight to the stream, as an api of another centre sharing it might.
        spool = JetStreamSpool(JetStreamConfig(url=nats_server, partitions=1))
        try:
            ghost = spool.append("ghost", "json", [GOOD, GOOD]).seq
        finally:
            spool.close()
        with api.client(ingest) as http:
            sent = http.post(
                "/api/v1/events",
                content=b"\n".join([GOOD] * 3),
                headers={"Content-Type": "application/x-ndjson"},
            )
        assert sent.status_code == 202, sent.text
        api.wait_stored(admin, "branch-a", 3, timeout=60)
        with api.client(admin) as http:
            items = http.get("/api/v1/deadletters").json()["items"]
        assert len(items) == 1, (items, cluster.logs())
        dead = items[0]
        assert dead["unit"] == "ghost" and dead["seq"] == ghost and dead["records"] == 2
        assert dead["source"] == "detect:p0" and dead["attempts"] == 3
        assert "no unit 'ghost'" in dead["reason"], dead["reason"]
        with api.client(branch_admin) as http:
            assert http.get("/api/v1/deadletters").json()["items"] == []
        # Set aside once; the worker does not keep retrying it (nor the batches after it).
        time.sleep(2.0)
        log = cluster.workers[0].log()
        assert log.count("dead-lettered") == 1, log
        assert log.count("no unit 'ghost'") <= 3, log
    finally:
        cluster.kill_all()
