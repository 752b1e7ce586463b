"""A unit that has sent events and goes quiet past its threshold raises an alert of its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from serverkit import add_token, admin, make_centre

pytestmark = pytest.mark.contract

LINE = b"<34>1 2026-01-01T00:00:00Z sensor-1 sshd 42 - - Accepted password for bob from 192.0.2.7\n"


def test_a_silent_sensor_raises_one_alert_per_silence(tmp_path: Path) -> None:
    centre = make_centre(tmp_path / "home", args=["--silent-check", "0.3"])
    admin(centre.home, "unit", "add", "branch-b", "--parent", "hq", "--silent-after", "2")
    ingest = add_token(centre.home, "branch-b", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()

    def silent_alerts(http: object) -> list[dict[str, object]]:
        items = http.get("/api/v1/alerts", params={"rule_id": "vedette-sensor-silent"})  # type: ignore[attr-defined]
        return list(items.json()["items"])

    try:
        with centre.client(ingest) as sender, centre.client(analyst) as http:
            # Never heard from: no alert however long it stays quiet.
            time.sleep(2.5)
            assert silent_alerts(http) == []
            headers = {"Content-Type": "text/plain"}
            assert sender.post("/api/v1/events", content=LINE, headers=headers).status_code == 202
            centre.wait_stored(analyst, "branch-b", 1)
            deadline = time.monotonic() + 20
            while not silent_alerts(http):
                assert time.monotonic() < deadline, centre.log()
                time.sleep(0.2)
            time.sleep(1.5)
            first = silent_alerts(http)
            assert len(first) == 1 and first[0]["unit"] == "branch-b"
            assert first[0]["level"] == "high" and first[0]["count"] == 1
            assert "branch-b" in str(first[0]["rule_title"])
            # Heard from again, then silent again: a second alert for the second silence.
            assert sender.post("/api/v1/events", content=LINE, headers=headers).status_code == 202
            centre.wait_stored(analyst, "branch-b", 2)
            deadline = time.monotonic() + 20
            while len(silent_alerts(http)) < 2:
                assert time.monotonic() < deadline, centre.log()
                time.sleep(0.2)
            assert len(silent_alerts(http)) == 2
    finally:
        centre.stop()
