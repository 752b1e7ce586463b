"""New rules hunted back on a reload, through the real server.

The centre runs without the SigmaHQ rule "Bypass UAC via CMSTP" (rule X) while two units store
the OTRF CMSTP recording (real Sysmon and Security events). X is copied into the rule folder
and the centre gets SIGHUP: a retro-hunt of X alone starts over every unit the warning policy
allows (``unit-c`` is excluded), and its alerts are what ``vedette scan`` finds with X on the
same events. A reload that adds no rule starts no job.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import Centre, add_token, make_centre

from datasets import dataset

pytestmark = [
    pytest.mark.contract,
    pytest.mark.scaleout_excluded(
        "rules reload does not reach the workers in scale-out: the api refuses it "
        "and says to restart the roles"
    ),
]

RECORDING = ("otrf-security-datasets", "datasets", "atomic", "windows", "defense_evasion",
             "host", "psh_cmstp_execution_bypassuac.zip")  # fmt: skip
RULE_X = ("sigma", "rules", "windows", "process_creation", "proc_creation_win_uac_bypass_cmstp.yml")
LIVE_RULE = ("sigma", "rules", "windows", "builtin", "security",
             "win_security_audit_log_cleared.yml")  # fmt: skip


def _lines(path: Path) -> list[bytes]:
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        return [line for line in archive.read(name).splitlines() if line.strip()]


def _send(centre: Centre, token: str, lines: list[bytes]) -> None:
    with centre.client(token) as http:
        for start in range(0, len(lines), 2000):
            answer = http.post(
                "/api/v1/events",
                content=b"\n".join(lines[start : start + 2000]),
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert answer.status_code == 202, answer.text


def _scan(events: Path, rule: Path) -> list[dict[str, Any]]:
    out = events.parent / "scan.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "vedette", "scan", str(events), "--rules", str(rule), "--no-fold",
         "-f", "jsonl", "-o", str(out), "--no-progress", "--no-summary", "--no-cache"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [d for d in found if d["kind"] == "sigma"]


def _reload_jobs(http: httpx.Client) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = http.get("/api/v1/retrohunts").json()["items"]
    return [j for j in jobs if j["created_by"] == "retrohunt:reload"]


def _wait_job(http: httpx.Client, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = _reload_jobs(http)
        if jobs and jobs[0]["status"] in ("done", "cancelled", "failed"):
            detail: dict[str, Any] = http.get(f"/api/v1/retrohunts/{jobs[0]['id']}").json()
            return detail
        time.sleep(0.3)
    raise AssertionError("no retro-hunt of the new rule finished")


def test_new_rule_hunted_back_on_reload(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(dataset(*LIVE_RULE), rules)
    policy = tmp_path / "policy.yaml"
    policy.write_text("lookback_days: 7300\nexclude_units: [unit-c]\n")
    home = tmp_path / "home"
    centre = make_centre(
        home,
        units=(("hq", None), ("unit-a", "hq"), ("unit-b", "hq"), ("unit-c", "hq")),
        args=["--rules", str(rules), "--warning-policy", str(policy)],
    )
    hq = add_token(home, "hq", "admin")
    ingest = {u: add_token(home, u, "ingest") for u in ("unit-a", "unit-c")}
    lines = _lines(dataset(*RECORDING))
    plain = tmp_path / "events.ndjson"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    expected = _scan(plain, dataset(*RULE_X))
    assert expected, "rule X must fire on the recording for this test to mean anything"
    rule_id = expected[0]["rule_id"]
    centre.start()
    try:
        for unit, token in ingest.items():
            _send(centre, token, lines)
            centre.wait_stored(hq, unit, len(lines))
        with centre.client(hq) as http:
            assert not _reload_jobs(http)
            assert not [a for a in http.get("/api/v1/alerts").json()["items"]
                        if a["rule_id"] == rule_id]  # fmt: skip
            shutil.copy(dataset(*RULE_X), rules)
            assert centre.process is not None
            centre.process.send_signal(signal.SIGHUP)
            job = _wait_job(http)
            assert job["status"] == "done", job
            assert job["kind"] == "sigma" and job["unit"] == "hq"
            assert job["units"] == ["hq", "unit-a", "unit-b"]  # the policy excludes unit-c
            assert job["hits"] == len(expected)
            alerts = [a for a in http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
                      if a["rule_id"] == rule_id]  # fmt: skip
            assert {a["unit"] for a in alerts} == {"unit-a"}
            assert Counter(a["host"] for a in alerts for _ in range(a["count"])) == Counter(
                d["host"] for d in expected
            )
            assert sorted(a["id"] for a in alerts) == sorted(job["alert_ids"])
            # Nothing new: the reload starts no second job.
            answer = http.post("/api/v1/rules/reload")
            assert answer.status_code == 200, answer.text
            # (the job is recorded before the reload answers)
            assert len(_reload_jobs(http)) == 1
    finally:
        centre.stop()
