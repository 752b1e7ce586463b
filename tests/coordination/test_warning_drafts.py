"""Warnings that wait for an analyst, and the bulletin where nothing appears, through the real
server.

As in ``test_multi_unit``: ``unit-a`` holds the intrusion (OTRF CMSTP recording), ``unit-b``'s
stored events hold the indicator 168.63.129.16 (OTRF Covenant recording), ``unit-c``'s do not.
The policy drafts every warning to ``unit-b`` and sends a bulletin where nothing appears.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import Centre, add_token, make_centre

from datasets import dataset

pytestmark = pytest.mark.contract

INDICATOR = "168.63.129.16"
OTRF = ("otrf-security-datasets", "datasets", "atomic", "windows")
RECORDINGS = {
    "unit-a": (*OTRF, "defense_evasion", "host", "psh_cmstp_execution_bypassuac.zip"),
    "unit-b": (*OTRF, "defense_evasion", "host", "covenant_installutil.zip"),
    "unit-c": (*OTRF, "discovery", "host", "cmd_discover_iexplorer_version_registry.zip"),
}
POLICY = """lookback_days: 60
min_level: critical
draft: {levels: all, units: [unit-b]}
bulletin_where_absent: true
"""


def _send(centre: Centre, token: str, path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        lines = [line for line in archive.read(name).splitlines() if line.strip()]
    with centre.client(token) as http:
        for start in range(0, len(lines), 2000):
            answer = http.post("/api/v1/events", content=b"\n".join(lines[start : start + 2000]),
                               headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
            assert answer.status_code == 202, answer.text
    return len(lines)


def _items(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    answer = http.get(path, params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_drafted_warning_reaches_b_only_once_approved_and_c_gets_a_bulletin(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    feed = tmp_path / "feed.csv"
    feed.write_text(f"type,value,level,attack\nip,{INDICATOR},high,T1071\n")
    home = tmp_path / "home"
    centre = make_centre(
        home,
        units=(("hq", None), ("unit-a", "hq"), ("unit-b", "hq"), ("unit-c", "hq")),
        args=["--intel", str(feed), "--warning-policy", str(policy)],
    )
    hq = add_token(home, "hq", "admin")
    analyst = {u: add_token(home, u, "analyst") for u in RECORDINGS}
    centre.start()
    try:
        for unit in ("unit-b", "unit-c", "unit-a"):  # A's intrusion is seen last
            sent = _send(centre, add_token(home, unit, "ingest"), dataset(*RECORDINGS[unit]))
            centre.wait_stored(hq, unit, sent, timeout=180)
        with centre.client(hq) as admin:
            deadline = time.monotonic() + 90
            while not (drafts := [w for w in _items(admin, "/api/v1/warnings")
                                  if w["status"] == "draft"]):  # fmt: skip
                assert time.monotonic() < deadline, "no drafted warning"
                time.sleep(0.3)
            time.sleep(2.0)  # the coordinator finishes the other alerts of A
            drafts = [w for w in _items(admin, "/api/v1/warnings") if w["status"] == "draft"]
            assert {w["unit"] for w in drafts} == {"unit-b"} and all(w["hits"] for w in drafts)
            assert len(_items(admin, "/api/v1/warnings")) == len(drafts)  # nothing else sent
        first = drafts[-1]
        with centre.client(analyst["unit-b"]) as b, centre.client(analyst["unit-c"]) as c:
            assert _items(b, "/api/v1/warnings") == [] and _items(c, "/api/v1/warnings") == []
            assert b.post(f"/api/v1/warnings/{first['id']}/approve").status_code == 404
            assert b.post(f"/api/v1/warnings/{first['id']}/ack").status_code == 404
            assert c.post(f"/api/v1/warnings/{first['id']}/approve").status_code == 404
        with centre.client(analyst["unit-a"]) as a:
            seen = _items(a, "/api/v1/warnings")
            assert sorted(w["id"] for w in seen) == sorted(w["id"] for w in drafts)
            assert all(w["hits"] == [] and w["hits_total"] > 0 for w in seen)  # B's events
            approved = a.post(f"/api/v1/warnings/{first['id']}/approve")
            assert approved.status_code == 200, approved.text
            assert approved.json()["status"] == "new"
            again = a.post(f"/api/v1/warnings/{first['id']}/approve")
            assert again.status_code == 404  # no longer a draft
        with centre.client(analyst["unit-b"]) as b:
            (mine,) = _items(b, "/api/v1/warnings")
            assert mine["id"] == first["id"] and mine["hits"] == first["hits"]
            assert b.post(f"/api/v1/warnings/{first['id']}/ack").status_code == 200
            about = [x for x in _items(b, "/api/v1/bulletins")
                     if {"type": "ip", "value": INDICATOR} in x["observables"]]  # fmt: skip
            assert about == []  # B was warned, not sent a bulletin
        with centre.client(analyst["unit-c"]) as c:
            bulletins = _items(c, "/api/v1/bulletins")
            assert bulletins, "unit-c, where nothing appears, gets a bulletin by policy"
            assert any({"type": "ip", "value": INDICATOR} in x["observables"] for x in bulletins)
            for bulletin in bulletins:
                assert bulletin["from_unit"] == "hq" and bulletin["title"].startswith("Watch for:")
                assert "unit-a" not in str(bulletin)
    finally:
        centre.stop()
