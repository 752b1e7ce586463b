"""Dead letters, embedded mode: a batch the worker keeps failing on is set aside after three
attempts with its reason, visible on GET /api/v1/deadletters, and the spool moves on."""

from __future__ import annotations

import sqlite3
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
