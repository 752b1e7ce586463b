"""Grouping by a chain of ATT&CK tactics on one host, and incidents sorted by priority,
through the real server.

Three medium rules (below the level that opens an incident) tag execution (T1059.001),
credential access (T1003.001) and lateral movement (T1021.002). On ``WS-1`` and ``SRV-9`` they
fire in that order, a minute apart: each host gets one incident holding its three alerts. On
``WS-2`` they fire in the reverse order: no chain, no incident. Marking ``SRV-9`` critical
puts its incident first under ``sort=priority`` although it is older.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import add_token, make_centre

pytestmark = pytest.mark.contract

STEPS = (  # (marker in the command line, technique, tactic)
    ("stepexec", "t1059.001", "execution"),
    ("stepcred", "t1003.001", "credential-access"),
    ("steplateral", "t1021.002", "lateral-movement"),
)


def _rule(marker: str, technique: str) -> str:
    return f"""title: Chain step {marker}
id: 00000000-0000-4000-8000-{abs(hash(marker)) % 10**12:012d}
status: test
level: medium
tags: [attack.{technique}]
logsource: {{product: windows, category: process_creation}}
detection:
  selection: {{CommandLine|contains: {marker}}}
  condition: selection
"""


def _event(host: str, when: datetime, marker: str, record: int) -> bytes:
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": 1,
        "TimeCreated": {"#attributes": {"SystemTime": when.isoformat().replace("+00:00", "Z")}},
        "EventRecordID": record,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": host,
    }
    data = {"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": f"cmd /c {marker}",
            "User": f"CORP\\user{record}"}  # fmt: skip
    return json.dumps({"Event": {"System": system, "EventData": data}}).encode()


def _incidents(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/incidents", params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _wait(http: httpx.Client, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = _incidents(http)
        if len(items) >= count:
            return items
        time.sleep(0.3)
    raise AssertionError(f"{count} incidents expected, got {_incidents(http)}")


def test_tactic_chain_opens_one_incident_per_host_and_priority_sorts(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for marker, technique, _ in STEPS:
        (rules / f"{marker}.yml").write_text(_rule(marker, technique))
    home = tmp_path / "home"
    centre = make_centre(home, args=["--rules", str(rules)])
    ingest = add_token(home, "branch-a", "ingest")
    analyst = add_token(home, "branch-a", "analyst")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    plan = {"SRV-9": list(STEPS), "WS-1": list(STEPS), "WS-2": list(reversed(STEPS))}
    centre.start()
    try:
        with centre.client(ingest) as http, centre.client(analyst) as reader:
            record = 0
            for host, incidents_after in (("SRV-9", 1), ("WS-1", 2), ("WS-2", 2)):
                lines = []
                for i, (marker, _, _) in enumerate(plan[host]):
                    record += 1
                    lines.append(_event(host, start + timedelta(minutes=i), marker, record))
                answer = http.post("/api/v1/events", content=b"\n".join(lines),
                                   headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
                assert answer.status_code == 202, answer.text
                _wait(reader, incidents_after)  # SRV-9's incident is the older one
            centre.wait_stored(analyst, "branch-a", record)
            alerts = reader.get("/api/v1/alerts", params={"limit": 100}).json()["items"]
            assert len(alerts) == 9
            assert all(a["level"] == "medium" for a in alerts)
            tactics = {a["rule_title"]: a["attack"][0]["tactics"] for a in alerts}
            assert tactics == {f"Chain step {m}": [t] for m, _, t in STEPS}
            time.sleep(2.0)  # let the coordinator see WS-2's alerts too
            incidents = _incidents(reader)
            assert [i["title"].split(":")[0] for i in incidents] == [
                "ATT&CK chain on WS-1", "ATT&CK chain on SRV-9"]  # fmt: skip
            for incident in incidents:
                detail = reader.get(f"/api/v1/incidents/{incident['id']}").json()
                host = incident["title"].split(" on ")[1].split(":")[0]
                assert sorted(a["id"] for a in detail["alerts"]) == sorted(
                    a["id"] for a in alerts if a["host"] == host
                )
                assert incident["title"].endswith(
                    "execution → credential-access → lateral-movement"
                )
                assert incident["priority"] == "medium" and incident["asset"] is None
            asset = {
                "unit": "branch-a",
                "kind": "host",
                "value": "SRV-9",
                "criticality": "critical",
            }
            answer = reader.post("/api/v1/assets", json=asset)
            assert answer.status_code == 201, answer.text
            ranked = _incidents(reader, sort="priority")
            assert [i["id"] for i in ranked] == [i["id"] for i in reversed(incidents)]
            assert ranked[0]["priority"] == "critical"
            assert ranked[0]["asset"] == {
                "kind": "host",
                "value": "srv-9",
                "criticality": "critical",
            }
            assert [i["id"] for i in _incidents(reader)] == [i["id"] for i in incidents]
    finally:
        centre.stop()
