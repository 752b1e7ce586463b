"""The centre as an operator first meets it: units, a token, events in, alerts out."""

from __future__ import annotations

from pathlib import Path

import pytest
from serverkit import add_token, make_centre

pytestmark = pytest.mark.contract

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07"


def test_events_in_alerts_out_with_attack_and_counts_that_survive_a_restart(
    tmp_path: Path,
) -> None:
    centre = make_centre(tmp_path / "home")
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([line for line in body.splitlines() if line.strip()])
    centre.start()
    try:
        with centre.client(ingest) as http:
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == events
        centre.wait_stored(analyst, "branch-a", events)
        with centre.client(analyst) as http:
            alerts = http.get("/api/v1/alerts", params={"limit": 1000}).json()
        titles = {a["rule_title"] for a in alerts["items"]}
        assert "LSASS Opened by a MiniDump Writer" in titles, titles
        lsass = next(a for a in alerts["items"] if a["rule_title"].startswith("LSASS"))
        assert lsass["unit"] == "branch-a" and lsass["host"] == "WS-FIN-07.corp.example"
        assert {"id": "T1003.001", "name": "LSASS Memory", "tactics": ["credential-access"]} in (
            lsass["attack"]
        )
        assert alerts["next"] is None
    finally:
        assert centre.stop() == 0
    centre.start()
    try:
        unit = centre.wait_stored(analyst, "branch-a", events, timeout=10)
        assert unit["events_received"] == events and unit["events_stored"] == events
    finally:
        centre.stop()
