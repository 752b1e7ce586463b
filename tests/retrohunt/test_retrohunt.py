"""Retro-hunt and asset criticality through the real server.

Units ``unit-a`` and ``unit-b`` both receive the OTRF CMSTP UAC-bypass recording (real Sysmon and
Security events). The centre runs a rule set without the SigmaHQ rule "Bypass UAC via CMSTP"
(rule X); retro-hunting X afterwards over one unit must find exactly what ``vedette scan`` finds
with X on the same events, raise alerts in that unit only and never read the other unit's files
(they are garbage while the job runs). The same for an indicator set. A long job over a unit of
generated Parquet (real events, many days) is cancelled half-way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from serverkit import Centre, add_token, make_centre

from datasets import dataset
from vedette.store.eventstore import ParquetEventStore

RECORDING = (
    "otrf-security-datasets",
    "datasets",
    "atomic",
    "windows",
    "defense_evasion",
    "host",
    "psh_cmstp_execution_bypassuac.zip",
)
RULE_X = ("sigma", "rules", "windows", "process_creation", "proc_creation_win_uac_bypass_cmstp.yml")
LIVE_RULE = (
    "sigma",
    "rules",
    "windows",
    "builtin",
    "security",
    "win_security_audit_log_cleared.yml",
)
INDICATOR = "168.63.129.16"


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


def _scan(events: Path, *args: str) -> list[dict[str, Any]]:
    """Detections of ``vedette scan`` (unfolded JSON lines) over ``events``."""
    out = events.parent / f"scan-{abs(hash(args))}.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "vedette", "scan", str(events), *args, "--no-fold", "-f", "jsonl",
         "-o", str(out), "--no-progress", "--no-summary", "--no-cache"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _wait_job(http: httpx.Client, job_id: int, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/api/v1/retrohunts/{job_id}").json()
        if job["status"] in ("done", "cancelled", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"retro-hunt {job_id} did not finish")


def _alerts(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/alerts", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("retrohunt")
    recording = dataset(*RECORDING)
    rule_x = dataset(*RULE_X)
    rules = work / "rules"
    rules.mkdir()
    shutil.copy(dataset(*LIVE_RULE), rules)  # the centre's rule set: not rule X
    live_feed = work / "live-feed.txt"
    live_feed.write_text("203.0.113.77\n")  # appears nowhere; a reload adds INDICATOR
    policy = work / "policy.yaml"
    policy.write_text("lookback_days: 7300\nexclude_units: [unit-c]\n")
    home = work / "home"
    centre = make_centre(
        home,
        units=(("hq", None), ("unit-a", "hq"), ("unit-b", "hq"), ("unit-c", "hq"),
               ("unit-d", "hq")),
        args=["--rules", str(rules), "--intel", str(live_feed), "--warning-policy", str(policy)],
    )  # fmt: skip
    tokens = {
        "hq": add_token(home, "hq", "admin"),
        **{u: add_token(home, u, "analyst") for u in ("unit-a", "unit-b", "unit-d")},
        **{f"ingest-{u}": add_token(home, u, "ingest") for u in ("unit-a", "unit-b", "unit-d")},
    }
    centre.start()
    lines = _lines(recording)
    for unit in ("unit-a", "unit-b"):
        _send(centre, tokens[f"ingest-{unit}"], lines)
    for unit in ("unit-a", "unit-b"):
        centre.wait_stored(tokens["hq"], unit, len(lines))
    plain = work / "events.ndjson"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    feed = work / "feed.txt"
    feed.write_text(INDICATOR + "\n")
    world = {
        "centre": centre,
        "tokens": tokens,
        "home": home,
        "lines": lines,
        "rule_x": rule_x,
        "live_feed": live_feed,
        "scan_x": [d for d in _scan(plain, "--rules", str(rule_x)) if d["kind"] == "sigma"],
        "scan_intel": [
            d for d in _scan(plain, "--rules", str(rules), "--intel", str(feed))
            if d["kind"] == "intel"
        ],
    }  # fmt: skip
    try:
        yield world
    finally:
        centre.stop()


def test_the_rule_fires_on_the_recording_but_is_not_loaded(world: Any) -> None:
    assert world["scan_x"], "rule X must fire on the recording for this test to mean anything"
    assert {d["rule_path"] for d in world["scan_x"]} == {str(world["rule_x"])}
    with world["centre"].client(world["tokens"]["hq"]) as http:
        assert not [a for a in _alerts(http) if a["rule_id"] == world["scan_x"][0]["rule_id"]]


def test_sigma_retrohunt_over_one_unit(world: Any) -> None:
    centre, tokens = world["centre"], world["tokens"]
    rule_id = world["scan_x"][0]["rule_id"]
    other = centre.home / "events" / "unit=unit-b"
    saved = centre.home / "unit-b-saved"
    shutil.copytree(other, saved)
    b_files = list(other.rglob("part-*.parquet"))
    assert b_files
    for path in b_files:  # any read of unit-b's events now fails the job
        path.write_bytes(b"not parquet")
    try:
        with centre.client(tokens["hq"]) as http:
            answer = http.post(
                "/api/v1/retrohunts",
                json={"rule": world["rule_x"].read_text(), "units": ["unit-a"],
                      "from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
            )  # fmt: skip
            assert answer.status_code == 201, answer.text
            job = _wait_job(http, answer.json()["id"])
            assert job["status"] == "done", job
            assert job["progress"] == 1.0
            assert job["files_done"] == job["files_total"] > 0
            assert job["days_done"] == job["days_total"] >= 1
            assert (job["units_done"], job["units_total"]) == (1, 1)
            assert job["events_read"] == len(world["lines"])
            assert job["hits"] == len(world["scan_x"])
            assert job["units"] == ["unit-a"]
            alerts = [a for a in _alerts(http) if a["rule_id"] == rule_id]
            assert {a["unit"] for a in alerts} == {"unit-a"}
            assert sum(a["count"] for a in alerts) == len(world["scan_x"])
            assert Counter(a["host"] for a in alerts for _ in range(a["count"])) == Counter(
                d["host"] for d in world["scan_x"]
            )
            assert sorted(a["id"] for a in alerts) == sorted(job["alert_ids"])
            detail = http.get(f"/api/v1/alerts/{alerts[0]['id']}").json()
            assert detail["matched"]["retrohunt"] == job["id"]
    finally:
        shutil.rmtree(other)
        shutil.move(saved, other)
    with centre.client(tokens["unit-b"]) as http:
        assert not [a for a in _alerts(http) if a["rule_id"] == rule_id]
        # unit-b's own events do hold what rule X finds: its own hunt raises its own alerts.
        job_id = http.post("/api/v1/retrohunts", json={"rule": world["rule_x"].read_text()}).json()[
            "id"
        ]
        job = _wait_job(http, job_id)
        assert (job["status"], job["units"], job["hits"]) == (
            "done", ["unit-b"], len(world["scan_x"])
        )  # fmt: skip
        assert {a["unit"] for a in _alerts(http) if a["rule_id"] == rule_id} == {"unit-b"}


def test_another_units_jobs_and_events_are_out_of_reach(world: Any) -> None:
    centre, tokens = world["centre"], world["tokens"]
    with centre.client(tokens["unit-a"]) as http:
        refused = http.post(
            "/api/v1/retrohunts", json={"rule": world["rule_x"].read_text(), "units": ["unit-b"]}
        )
        assert refused.status_code == 404, refused.text
        mine = {j["id"] for j in http.get("/api/v1/retrohunts").json()["items"]}
    with centre.client(tokens["unit-b"]) as http:
        if not http.get("/api/v1/retrohunts").json()["items"]:
            # unit-b's own job, when no earlier test of this module ran in this process
            started = http.post(
                "/api/v1/retrohunts",
                json={"rule": world["rule_x"].read_text(), "units": ["unit-b"]},
            )
            assert started.status_code == 201, started.text
        theirs = [j["id"] for j in http.get("/api/v1/retrohunts").json()["items"]]
        assert theirs and not mine & set(theirs)
    with centre.client(tokens["unit-a"]) as http:
        assert http.get(f"/api/v1/retrohunts/{theirs[0]}").status_code == 404
        assert http.post(f"/api/v1/retrohunts/{theirs[0]}/cancel").status_code == 404
        bad = http.post("/api/v1/retrohunts", json={"rule": "title: x\nlogsource: {}\n"})
        assert bad.status_code == 400
        both = http.post("/api/v1/retrohunts", json={"rule": "x", "indicators": "1.2.3.4"})
        assert both.status_code == 400


def test_indicator_retrohunt_matches_scan(world: Any) -> None:
    centre, tokens = world["centre"], world["tokens"]
    expected = world["scan_intel"]
    assert expected, "the indicator must appear in the recording"
    with centre.client(tokens["unit-a"]) as http:
        answer = http.post(
            "/api/v1/retrohunts",
            json={"indicators": f"# partner feed\n{INDICATOR}\n", "format": "list"},
        )
        assert answer.status_code == 201, answer.text
        job = _wait_job(http, answer.json()["id"])
        assert (job["status"], job["progress"], job["kind"]) == ("done", 1.0, "intel")
        assert job["hits"] == len(expected)
        alerts = [a for a in _alerts(http) if a["id"] in job["alert_ids"]]
        assert alerts and {a["unit"] for a in alerts} == {"unit-a"}
        assert {a["kind"] for a in alerts} == {"intel"}
        assert sum(a["count"] for a in alerts) == len(expected)
        assert {o["value"] for a in alerts for o in a["observables"]} >= {INDICATOR}


def test_hits_attach_to_an_incident(world: Any) -> None:
    centre, tokens = world["centre"], world["tokens"]
    with centre.client(tokens["unit-a"]) as http:
        incident = http.post(
            "/api/v1/incidents", json={"title": "CMSTP hunt", "severity": "medium"}
        )
        assert incident.status_code == 201, incident.text
        incident_id = incident.json()["id"]
        job_id = http.post(
            "/api/v1/retrohunts",
            json={"rule": world["rule_x"].read_text(), "incident_id": incident_id},
        ).json()["id"]
        job = _wait_job(http, job_id)
        assert job["status"] == "done" and job["alert_ids"]
        detail = http.get(f"/api/v1/incidents/{incident_id}").json()
        # Every hit is attached; the coordinator may also group the unit's own alerts on the
        # same host into this open incident (automatic grouping), which is not the job's doing.
        assert set(job["alert_ids"]) <= {a["id"] for a in detail["alerts"]}
    with centre.client(tokens["unit-b"]) as http:  # not the owner: 404, nothing started
        answer = http.post(
            "/api/v1/retrohunts",
            json={"rule": world["rule_x"].read_text(), "incident_id": incident_id},
        )
        assert answer.status_code == 404, answer.text


def _many_days(home: Path, unit: str, days: int, rows: int) -> int:
    """Write ``days`` day files of ``rows`` real events each (unit-a's stored events, retimed)
    straight into the event store; the number of events written."""
    source = pa.concat_tables(
        pq.read_table(p) for p in sorted((home / "events" / "unit=unit-a").rglob("*.parquet"))
    )
    base = source.take([i % source.num_rows for i in range(rows)])
    store = ParquetEventStore(home / "events")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(days):
        day = start + timedelta(days=n)
        table = base.set_column(
            base.schema.get_field_index("unit"), "unit", pa.array([unit] * rows)
        )
        table = table.set_column(
            table.schema.get_field_index("day"), "day", pa.array([day.date().isoformat()] * rows)
        )
        times = pa.array(
            [day + timedelta(seconds=i) for i in range(rows)], pa.timestamp("us", "UTC")
        )
        table = table.set_column(table.schema.get_field_index("time"), "time", times)
        store.write(table, 0, 0)
    assert pc.sum(pa.array([rows] * days)).as_py() == days * rows
    return days * rows


def test_cancel_stops_a_long_job(world: Any) -> None:
    centre, tokens = world["centre"], world["tokens"]
    _many_days(centre.home, "unit-c", days=60, rows=5000)
    with centre.client(tokens["hq"]) as http:
        job_id = http.post(
            "/api/v1/retrohunts", json={"rule": world["rule_x"].read_text(), "units": ["unit-c"]}
        ).json()["id"]
        deadline = time.monotonic() + 120
        job = http.get(f"/api/v1/retrohunts/{job_id}").json()
        while job["files_done"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            job = http.get(f"/api/v1/retrohunts/{job_id}").json()
        assert job["status"] == "running", job
        cancelled = http.post(f"/api/v1/retrohunts/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        job = _wait_job(http, job_id)
        assert job["status"] == "cancelled", job
        assert 0 < job["files_done"] < job["files_total"] == 60
        # One file a day: as many unit-days read as files; the unit is not read through.
        assert (job["days_done"], job["days_total"]) == (job["files_done"], 60)
        assert (job["units_done"], job["units_total"]) == (0, 1)
        assert 0 < job["progress"] < 1
        time.sleep(1.0)
        again = http.get(f"/api/v1/retrohunts/{job_id}").json()
        assert (again["files_done"], again["events_read"]) == (
            job["files_done"], job["events_read"]
        )  # fmt: skip
        listed = http.get("/api/v1/retrohunts", params={"status": "cancelled"}).json()["items"]
        assert job_id in {j["id"] for j in listed}


def test_an_alert_on_a_critical_host_sorts_first(world: Any) -> None:
    centre, tokens = world["centre"], world["tokens"]
    lines = world["lines"]
    renamed = [line.replace(b"WORKSTATION5", b"DC01") for line in lines]
    _send(centre, tokens["ingest-unit-d"], lines)
    _send(centre, tokens["ingest-unit-d"], renamed)
    centre.wait_stored(tokens["hq"], "unit-d", 2 * len(lines))
    with centre.client(tokens["unit-d"]) as http:
        deadline = time.monotonic() + 60
        alerts = _alerts(http)
        while len({a["host"] for a in alerts}) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            alerts = _alerts(http)
        hosts = {a["host"].lower() for a in alerts}
        assert hosts >= {"workstation5", "dc01"}, alerts
        oldest = min(alerts, key=lambda a: a["id"])  # last in the default (newest first) order
        assert _alerts(http)[0]["id"] != oldest["id"]
        marked = http.post(
            "/api/v1/assets",
            json={"kind": "host", "value": oldest["host"], "criticality": "critical",
                  "note": "domain controller"},
        )  # fmt: skip
        assert marked.status_code == 201, marked.text
        ranked = _alerts(http, sort="priority")
        assert ranked[0]["host"] == oldest["host"]
        assert ranked[0]["asset"]["criticality"] == "critical"
        assert ranked[0]["priority"] == "critical"
        assert all(a["asset"] is None for a in ranked if a["host"] != oldest["host"])
        assets = http.get("/api/v1/assets").json()["items"]
        assert [(a["unit"], a["value"]) for a in assets] == [("unit-d", oldest["host"].lower())]
    with centre.client(tokens["unit-a"]) as http:  # another unit's asset: invisible, 404
        assert http.get("/api/v1/assets").json()["items"] == []
        assert http.delete(f"/api/v1/assets/{assets[0]['id']}").status_code == 404
        bad = http.post("/api/v1/assets", json={"kind": "network", "value": "not/a/net"})
        assert bad.status_code == 400
    with centre.client(tokens["unit-d"]) as http:
        assert http.delete(f"/api/v1/assets/{assets[0]['id']}").status_code == 204
        assert all(a["asset"] is None for a in _alerts(http, sort="priority"))


def test_new_indicators_of_a_reload_are_hunted_back(world: Any) -> None:
    centre, tokens = world["centre"], world["tokens"]
    world["live_feed"].write_text(f"203.0.113.77\n{INDICATOR}\n")
    with centre.client(tokens["hq"]) as http:
        before = {j["id"] for j in http.get("/api/v1/retrohunts").json()["items"]}
        assert http.post("/api/v1/rules/reload").status_code == 200
        jobs = [j for j in http.get("/api/v1/retrohunts").json()["items"] if j["id"] not in before]
        assert len(jobs) == 1, jobs
        job = _wait_job(http, jobs[0]["id"])
        assert (job["status"], job["kind"], job["unit"]) == ("done", "intel", "hq")
        assert "unit-c" not in job["units"]  # excluded by the warning policy
        stored = {u["name"]: u["events_stored"] for u in http.get("/api/v1/units").json()["items"]}
        copies = sum(stored[u] for u in ("unit-a", "unit-b", "unit-d")) // len(world["lines"])
        assert job["hits"] == copies * len(world["scan_intel"])
        alerts = [a for a in _alerts(http) if a["id"] in job["alert_ids"]]
        # Every unit holding the recording (unit-d only once the criticality test sent it).
        assert {a["unit"] for a in alerts} == {
            u for u in ("unit-a", "unit-b", "unit-d") if stored.get(u)
        }
        assert {o["value"] for a in alerts for o in a["observables"]} >= {INDICATOR}
        # Reloading the same feeds again finds nothing new: no second job.
        assert http.post("/api/v1/rules/reload").status_code == 200
        after = {j["id"] for j in http.get("/api/v1/retrohunts").json()["items"]}
        assert after == before | {job["id"]}
