"""One intrusion, three units, through the real server: incident, early warning, isolation.

Unit ``unit-a`` receives the OTRF CMSTP UAC-bypass recording (real Sysmon/Security events of
one workstation); ``unit-b`` the OTRF Covenant InstallUtil recording, which talks to the same
address 168.63.129.16; ``unit-c`` the OTRF Internet Explorer version discovery recording, which
talks to no public address at all. An indicator feed names 168.63.129.16.

Expected: ``unit-a``'s alerts form one incident; ``unit-b`` is warned, linked to that incident,
with exactly its own events that hold the address (checked against the dataset itself);
``unit-c`` gets nothing; ``unit-b`` reads none of ``unit-a``'s data through incidents, alerts
or hunting until ``unit-a`` shares, and then only what was shared.
"""

from __future__ import annotations

import json
import re
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
TOKEN = re.compile(r"(?<![A-Za-z0-9_.-])" + re.escape(INDICATOR) + r"(?![A-Za-z0-9_-]|\.\d)")


def _lines(path: Path) -> list[bytes]:
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        return [line for line in archive.read(name).splitlines() if line.strip()]


def _expected_hits(lines: list[bytes]) -> list[tuple[str, str, str]]:
    """(host, field, value cut to 512) of every string field of the recording holding the
    indicator, once per event and field."""
    found = []
    for line in lines:
        event = json.loads(line)
        for key, value in event.items():
            if isinstance(value, str) and TOKEN.search(value):
                found.append((event.get("Hostname"), key, value[:512]))
    return found


def _send(centre: Centre, token: str, lines: list[bytes]) -> None:
    with centre.client(token) as http:
        for start in range(0, len(lines), 2000):
            body = b"\n".join(lines[start : start + 2000])
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
            assert answer.status_code == 202, answer.text


def _wait(what: str, probe: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("coordination")
    feed = work / "feed.csv"
    feed.write_text(f"type,value,level,attack\nip,{INDICATOR},high,T1071\n")
    policy = work / "policy.yaml"
    # The B recording is 32 days older than A's: look back 60 days.
    policy.write_text("lookback_days: 60\n")
    centre = make_centre(
        work / "home",
        units=(("hq", None), ("unit-a", "hq"), ("unit-b", "hq"), ("unit-c", "hq")),
        args=["--intel", str(feed), "--warning-policy", str(policy)],
    )
    tokens = {
        f"{unit}:{role}": add_token(centre.home, unit, role)
        for unit in ("unit-a", "unit-b", "unit-c")
        for role in ("ingest", "analyst")
    }
    tokens["hq:admin"] = add_token(centre.home, "hq", "admin")
    lines = {unit: _lines(dataset(*parts)) for unit, parts in RECORDINGS.items()}
    centre.start()
    try:
        # B and C first: their events are stored before A's intrusion is seen.
        for unit in ("unit-b", "unit-c"):
            _send(centre, tokens[f"{unit}:ingest"], lines[unit])
            centre.wait_stored(tokens["hq:admin"], unit, len(lines[unit]), timeout=180)
        _send(centre, tokens["unit-a:ingest"], lines["unit-a"])
        centre.wait_stored(tokens["hq:admin"], "unit-a", len(lines["unit-a"]), timeout=180)
        yield centre, tokens, lines
    finally:
        centre.stop()


def _get(centre: Centre, token: str, path: str, **params: Any) -> httpx.Response:
    with centre.client(token) as http:
        return http.get(path, params=params)


def _a_incident(centre: Centre, tokens: dict[str, str]) -> dict[str, Any]:
    def probe() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = _get(
            centre, tokens["unit-a:analyst"], "/api/v1/incidents"
        ).json()["items"]
        return items

    items = _wait("unit-a's incident", probe)
    assert len(items) == 1, items
    detail: dict[str, Any] = _get(
        centre, tokens["unit-a:analyst"], f"/api/v1/incidents/{items[0]['id']}"
    ).json()
    return detail


def _b_warnings(centre: Centre, tokens: dict[str, str], incident_id: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]]:
        items = _get(centre, tokens["unit-b:analyst"], "/api/v1/warnings").json()["items"]
        return [w for w in items if w["source_incident"] == incident_id]

    found: list[dict[str, Any]] = _wait("unit-b's warning", probe)
    return found


def test_the_intrusion_in_a_is_one_incident(world: Any) -> None:
    centre, tokens, lines = world
    incident = _a_incident(centre, tokens)
    alerts = _get(centre, tokens["unit-a:analyst"], "/api/v1/alerts", limit=1000).json()["items"]
    high = {a["id"] for a in alerts if a["level"] in ("high", "critical")}
    assert high, "the recording raises high alerts"
    inside = {a["id"] for a in incident["alerts"]}
    assert high <= inside, (high - inside, incident["title"])
    assert incident["units"][0] == {"unit": "unit-a", "role": "owner"}
    assert incident["severity"] in ("high", "critical")
    a_hosts = {json.loads(line).get("Hostname") for line in lines["unit-a"]}
    assert {a["host"] for a in incident["alerts"]} <= a_hosts
    times = [entry["time"] for entry in incident["timeline"]]
    assert times == sorted(times) and len(times) == len(inside)
    assert any(o["value"] == INDICATOR for o in incident["observables"])
    actions = [r["action"] for r in incident["audit"]]
    assert actions[0] == "incident.create" and "incident.attach" in actions


def test_b_is_warned_with_its_own_hits_and_c_gets_nothing(world: Any) -> None:
    centre, tokens, lines = world
    incident = _a_incident(centre, tokens)
    warnings = _b_warnings(centre, tokens, incident["id"])
    expected = _expected_hits(lines["unit-b"])
    assert expected, "the B recording holds the indicator"
    about = [w for w in warnings if {"type": "ip", "value": INDICATOR} in w["observables"]]
    assert len(about) == 1, warnings
    (warning,) = about
    hits = warning["hits"]
    assert warning["hits_total"] == len(expected)
    assert len(hits) == min(len(expected), 100)
    assert {(h["host"], h["field"], h["value"]) for h in hits} <= set(expected)
    assert all(h["observable"] == {"type": "ip", "value": INDICATOR} for h in hits)
    assert warning["unit"] == "unit-b" and warning["status"] == "new"
    assert {t["id"] for t in warning["attack"]} >= {"T1071"}
    assert warning["created_at"]
    for other in warnings:
        assert other["unit"] == "unit-b" and other["hits"], other
    # The B recording's own host names: never A's.
    b_hosts = {json.loads(line).get("Hostname") for line in lines["unit-b"]}
    assert {h["host"] for h in hits} <= b_hosts
    # The same alert's hunt covered C in the same pass: C has nothing, from any source.
    assert _get(centre, tokens["unit-c:analyst"], "/api/v1/warnings").json()["items"] == []
    # The counters are the coordinator's: in scale-out a scheduler process publishes them every
    # few seconds, so /metrics may show a warning a moment after the warning itself.
    deadline = time.monotonic() + 30
    while True:
        metrics = _get(centre, tokens["hq:admin"], "/metrics").text
        counted = dict(re.findall(r'vedette_coordination_total\{outcome="(\w+)"\} (\S+)', metrics))
        if float(counted["warnings"]) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert float(counted["warnings"]) >= 1 and float(counted["errors"]) == 0, counted
    # Acknowledge: B's own, once; C cannot touch B's.
    first = warnings[0]["id"]
    with centre.client(tokens["unit-c:analyst"]) as http:
        assert http.post(f"/api/v1/warnings/{first}/ack").status_code == 404
    with centre.client(tokens["unit-b:analyst"]) as http:
        acked = http.post(f"/api/v1/warnings/{first}/ack")
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"


def test_b_cannot_read_a_through_any_endpoint_until_shared(world: Any) -> None:
    centre, tokens, _ = world
    incident = _a_incident(centre, tokens)
    b = tokens["unit-b:analyst"]
    assert _get(centre, b, f"/api/v1/incidents/{incident['id']}").status_code == 404
    assert all(
        i["id"] != incident["id"] for i in _get(centre, b, "/api/v1/incidents").json()["items"]
    )
    a_alert = incident["alerts"][0]["id"]
    assert _get(centre, b, f"/api/v1/alerts/{a_alert}").status_code == 404
    b_alerts = _get(centre, b, "/api/v1/alerts", limit=1000).json()["items"]
    assert {a["unit"] for a in b_alerts} <= {"unit-b"}
    with centre.client(b) as http:
        for body in (
            {"sql": "SELECT count(*) FROM events WHERE unit = 'unit-a'"},
            {"sql": "SELECT count(*) FROM events", "units": ["unit-a"]},
            {"sql": "SELECT count(*) FROM events WHERE fields ILIKE '%cmstp%'"},
        ):
            answer = http.post("/api/v1/hunt", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["rows"] == [[0]], body
        a_files = centre.home / "events" / "unit=unit-a"
        refused = http.post(
            "/api/v1/hunt", json={"sql": f"SELECT * FROM read_parquet('{a_files}/*/*.parquet')"}
        )
        assert refused.status_code == 400
        # Nor can B change A's incident, or share it to itself.
        assert (
            http.patch(f"/api/v1/incidents/{incident['id']}", json={"status": "closed"}).status_code
            == 404
        )
        share = {"unit": "unit-b", "alert_ids": [a_alert]}
        assert http.post(f"/api/v1/incidents/{incident['id']}/share", json=share).status_code == 404

    # A shares one alert and the indicator: B sees exactly that.
    with centre.client(tokens["unit-a:analyst"]) as http:
        shared = http.post(
            f"/api/v1/incidents/{incident['id']}/share",
            json={"unit": "unit-b", "alert_ids": [a_alert], "observables": [INDICATOR]},
        )
        assert shared.status_code == 200, shared.text
        http.post(f"/api/v1/incidents/{incident['id']}/comments", json={"text": "internal note"})
        http.post(
            f"/api/v1/incidents/{incident['id']}/comments",
            json={"text": "block 168.63.129.16 egress", "shared": True},
        )
        task = http.post(
            f"/api/v1/incidents/{incident['id']}/tasks",
            json={"title": "check proxy logs", "unit": "unit-b", "due_at": "2030-01-01T00:00:00Z"},
        )
        assert task.status_code == 201, task.text
    seen = _get(centre, b, f"/api/v1/incidents/{incident['id']}").json()
    assert seen["access"] == "participant"
    assert [a["id"] for a in seen["alerts"]] == [a_alert]
    assert seen["observables"] == [{"type": "ip", "value": INDICATOR}]
    assert [e["alert_id"] for e in seen["timeline"]] == [a_alert]
    assert [c["text"] for c in seen["comments"]] == ["block 168.63.129.16 egress"]
    assert [t["title"] for t in seen["tasks"]] == ["check proxy logs"]
    assert "audit" not in seen and seen["origin_unit"] is None
    # B's export to partners carries the shared observable only.
    exported = _get(centre, b, f"/api/v1/incidents/{incident['id']}/export", format="misp")
    assert [a["value"] for a in exported.json()["Event"]["Attribute"]] == [INDICATOR]
    assert (
        _get(centre, tokens["unit-c:analyst"], f"/api/v1/incidents/{incident['id']}").status_code
        == 404
    )
    with centre.client(b) as http:
        done = http.patch(
            f"/api/v1/incidents/{incident['id']}/tasks/{task.json()['id']}", json={"status": "done"}
        )
        assert done.status_code == 200 and done.json()["status"] == "done"
        # Sharing gives no reach into A's events.
        count = http.post(
            "/api/v1/hunt", json={"sql": "SELECT count(*) FROM events", "units": ["unit-a"]}
        )
        assert count.json()["rows"] == [[0]]
    owner_view = _get(
        centre, tokens["unit-a:analyst"], f"/api/v1/incidents/{incident['id']}"
    ).json()
    assert any(r["action"] == "incident.share" for r in owner_view["audit"])


def test_escalation_hands_the_incident_to_the_unit_above(world: Any) -> None:
    centre, tokens, _ = world
    incident = _a_incident(centre, tokens)
    with centre.client(tokens["unit-a:analyst"]) as http:
        answer = http.post(f"/api/v1/incidents/{incident['id']}/escalate", json={"reason": "C2"})
        assert answer.status_code == 200, answer.text
        after = answer.json()
    assert after["access"] == "participant" and after["owner_unit"] == "hq"
    assert {a["id"] for a in after["alerts"]} == {a["id"] for a in incident["alerts"]}
    hq = _get(centre, tokens["hq:admin"], f"/api/v1/incidents/{incident['id']}").json()
    assert hq["access"] == "owner" and hq["units"][0] == {"unit": "hq", "role": "owner"}
    assert any(r["action"] == "incident.escalate" for r in hq["audit"])
    with centre.client(tokens["unit-a:analyst"]) as http:
        # The former owner no longer changes the header; hq does.
        assert (
            http.patch(f"/api/v1/incidents/{incident['id']}", json={"status": "closed"}).status_code
            == 403
        )


def test_bulletin_from_the_centre_and_who_has_not_acknowledged(world: Any) -> None:
    centre, tokens, _ = world
    with centre.client(tokens["hq:admin"]) as http:
        body = {
            "title": "Egress to 168.63.129.16 seen",
            "text": "Check and block.",
            "observables": [{"type": "ip", "value": INDICATOR}],
            "rules": ["proc_creation_win_cmstp_execution"],
            "units": ["unit-b", "unit-c"],
        }
        published = http.post("/api/v1/bulletins", json=body)
        assert published.status_code == 201, published.text
        bulletin = published.json()["id"]
    with centre.client(tokens["unit-c:analyst"]) as http:
        acked = http.post(f"/api/v1/bulletins/{bulletin}/ack")
        assert acked.status_code == 200 and acked.json()["acknowledged"] == ["unit-c"]
    with centre.client(tokens["unit-a:analyst"]) as http:
        assert all(b["id"] != bulletin for b in http.get("/api/v1/bulletins").json()["items"])
        assert http.post(f"/api/v1/bulletins/{bulletin}/ack").status_code == 404
        # A unit may not publish to a unit it does not cover.
        assert http.post("/api/v1/bulletins", json={**body, "units": ["unit-b"]}).status_code == 404
    b_view = _get(centre, tokens["unit-b:analyst"], "/api/v1/bulletins").json()["items"]
    assert [t["unit"] for b in b_view if b["id"] == bulletin for t in b["targets"]] == ["unit-b"]
    hq_view = _get(centre, tokens["hq:admin"], "/api/v1/bulletins").json()["items"]
    (mine,) = [b for b in hq_view if b["id"] == bulletin]
    assert mine["pending"] == ["unit-b"]
