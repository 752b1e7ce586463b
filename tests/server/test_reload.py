"""Rules reload without a restart: SIGHUP or the API; a broken set leaves the old one running."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from serverkit import add_token, make_centre

pytestmark = [
    pytest.mark.contract,
    pytest.mark.scaleout_excluded(
        "rules reload does not reach the workers in scale-out: the api refuses it "
        "and says to restart the roles"
    ),
]

RULE = """\
title: Test marker process {n}
id: 6f0c3f61-0000-4000-8000-00000000000{n}
status: test
level: high
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    CommandLine|contains: 'reload-marker-{n}'
  condition: selection
"""


def _event(n: int) -> bytes:
    record = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": f"host-{n}",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-01-01T00:00:00Z"}},
            },
            "EventData": {"Image": "C:\\\\x.exe", "CommandLine": f"x reload-marker-{n}"},
        }
    }
    return json.dumps(record).encode() + b"\n"


def _titles(http: object) -> set[str]:
    items = http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]  # type: ignore[attr-defined]
    return {a["rule_title"] for a in items}


def test_sighup_and_api_reload_swap_rules_and_a_broken_set_keeps_the_old(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "one.yml").write_text(RULE.format(n=1))
    centre = make_centre(tmp_path / "home", args=["--rules", str(rules)])
    ingest = add_token(centre.home, "branch-a", "ingest")
    admin = add_token(centre.home, "hq", "admin")
    centre.start()
    try:
        with centre.client(ingest) as sender, centre.client(admin) as http:
            assert http.get("/api/v1/rules").json()["rules_loaded"] == 1
            # A second rule, then SIGHUP: it fires on events sent afterwards.
            (rules / "two.yml").write_text(RULE.format(n=2))
            assert centre.process is not None
            centre.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while http.get("/api/v1/rules").json()["rules_loaded"] != 2:
                assert time.monotonic() < deadline, centre.log()
                time.sleep(0.2)
            headers = {"Content-Type": "application/x-ndjson"}
            assert (
                sender.post("/api/v1/events", content=_event(2), headers=headers).status_code == 202
            )
            centre.wait_stored(admin, "branch-a", 1)
            assert "Test marker process 2" in _titles(http)
            # A broken set (the folder is gone): the reload is refused, the old set runs on.
            shutil.rmtree(rules)
            refused = http.post("/api/v1/rules/reload")
            assert (
                refused.status_code == 400 and "old rules keep running" in refused.json()["message"]
            )
            status = http.get("/api/v1/rules").json()
            assert status["rules_loaded"] == 2 and status["reload_errors"]
            assert (
                sender.post("/api/v1/events", content=_event(1), headers=headers).status_code == 202
            )
            centre.wait_stored(admin, "branch-a", 2)
            assert "Test marker process 1" in _titles(http)
    finally:
        assert centre.stop() == 0
