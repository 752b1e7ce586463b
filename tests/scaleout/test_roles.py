"""The scale-out roles side by side, as separate processes on NATS and PostgreSQL started here:

- two schedulers: the active one SIGKILLed while an intrusion's alerts are being coordinated,
  the other takes the duty over and coordination goes on (one incident, the warning raised in
  the unit that holds the indicator, once); the first restarts and stands by; the new holder
  paused past its lease (SIGSTOP) loses the duty and, resumed, commits nothing more;
- two notifiers and a webhook receiver: every notification delivered exactly once;
- two apis behind the same NATS and PostgreSQL: both ingest and both serve the same alerts.

The coordination scenario is tests/coordination/test_multi_unit.py's: ``unit-a`` receives the
OTRF CMSTP UAC-bypass recording, ``unit-b`` the OTRF Covenant InstallUtil recording (which talks
to 168.63.129.16, the indicator of the feed), ``unit-c`` one that talks to no public address.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from scalekit import Cluster
from serverkit import free_port
from test_durability import make_batches, windows_records
from test_faults import _metric, _wait_until, clusters  # noqa: F401

from datasets import dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notify"))
from receivers import WebhookReceiver

INDICATOR = "168.63.129.16"
OTRF = ("otrf-security-datasets", "datasets", "atomic", "windows")
RECORDINGS = {
    "unit-a": (*OTRF, "defense_evasion", "host", "psh_cmstp_execution_bypassuac.zip"),
    "unit-b": (*OTRF, "defense_evasion", "host", "covenant_installutil.zip"),
    "unit-c": (*OTRF, "discovery", "host", "cmd_discover_iexplorer_version_registry.zip"),
}
TOKEN = re.compile(r"(?<![A-Za-z0-9_.-])" + re.escape(INDICATOR) + r"(?![A-Za-z0-9_-]|\.\d)")
NDJSON = {"Content-Type": "application/x-ndjson"}
CHANNELS = 12


def _lines(path: Path) -> list[bytes]:
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        return [line for line in archive.read(name).splitlines() if line.strip()]


def _expected_hits(lines: list[bytes]) -> int:
    """String fields of the recording that hold the indicator, once per event and field."""
    return sum(
        1
        for line in lines
        for value in json.loads(line).values()
        if isinstance(value, str) and TOKEN.search(value)
    )


def _send(url: str, token: str, lines: list[bytes], size: int = 2000) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for start in range(0, len(lines), size):
            body = b"\n".join(lines[start : start + size])
            answer = http.post("/api/v1/events", content=body, headers=NDJSON, timeout=60)
            assert answer.status_code == 202, answer.text


def _get(url: str, token: str, path: str, **params: Any) -> Any:
    answer = httpx.get(
        url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait(what: str, probe: Callable[[], Any], timeout: float, logs: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {logs()}")


def _epoch(process: Any) -> int:
    """The epoch a scheduler last said it runs the duties in."""
    found = re.findall(r" active \(epoch (\d+)\)", process.log())
    return int(found[-1]) if found else 0


def test_two_schedulers_the_active_one_killed_then_paused_coordination_goes_on_once(
    work_dir: Path,
    nats_server: str,
    database: str,
    clusters: list[Cluster],  # noqa: F811
) -> None:
    feed = work_dir / "feed.csv"
    feed.write_text(f"type,value,level,attack\nip,{INDICATOR},high,T1071\n")
    policy = work_dir / "policy.yaml"
    policy.write_text("lookback_days: 60\n")  # B's recording is 32 days older than A's
    cluster = Cluster(
        work_dir / "centre",
        nats_server,
        database,
        rules=(),
        extra_args=["--intel", str(feed), "--warning-policy", str(policy)],
    )
    clusters.append(cluster)
    cluster.add_units([("hq", None), ("unit-a", "hq"), ("unit-b", "hq"), ("unit-c", "hq")])
    tokens = {
        f"{unit}:{role}": cluster.token(unit, role)
        for unit in ("unit-a", "unit-b", "unit-c")
        for role in ("ingest", "analyst")
    }
    admin = cluster.token("hq", "admin")
    lines = {unit: _lines(dataset(*parts)) for unit, parts in RECORDINGS.items()}
    cluster.start(workers=2, schedulers=2, notifiers=0)
    api = cluster.api
    cluster.wait_spread()
    first = cluster.wait_scheduler()
    # B and C first: their events are stored before A's intrusion is seen.
    for unit in ("unit-b", "unit-c"):
        _send(api.url, tokens[f"{unit}:ingest"], lines[unit])
        api.wait_stored(admin, unit, len(lines[unit]), timeout=180)
    half = len(lines["unit-a"]) // 2
    _send(api.url, tokens["unit-a:ingest"], lines["unit-a"][:half])

    def incidents() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = _get(api.url, tokens["unit-a:analyst"], "/api/v1/incidents")[
            "items"
        ]
        return items

    # Mid-stream: the active scheduler has grouped A's first alerts; kill it at once.
    _wait("unit-a's first incident", incidents, 120, cluster.logs)
    first.kill()
    second = cluster.wait_scheduler(120)
    assert second is not first and _epoch(second) > _epoch(first)
    # The rest of the intrusion arrives while the survivor holds the duty.
    _send(api.url, tokens["unit-a:ingest"], lines["unit-a"][half:], size=500)
    api.wait_stored(admin, "unit-a", len(lines["unit-a"]), timeout=180)
    assert _metric(api.url, "vedette_duty_takeovers_total") >= 1
    # The killed one comes back and stands by; then the holder freezes past its lease.
    first.start()
    assert _wait_until(lambda: "standing by" in first.log(), 60), cluster.logs()
    assert second.process is not None
    second.process.send_signal(signal.SIGSTOP)
    try:
        third = _wait("the restarted scheduler to take over", first.active, 120, cluster.logs)
        assert third
    finally:
        second.process.send_signal(signal.SIGCONT)
    # Resumed, the frozen holder finds its epoch gone: it stops and commits nothing more.
    assert _wait_until(lambda: not second.active(), 60), cluster.logs()
    assert cluster.wait_scheduler(60) is first

    # Coordination went on, once: A's intrusion is one incident with every high alert in it.
    def settled() -> list[dict[str, Any]]:
        alerts = _get(api.url, tokens["unit-a:analyst"], "/api/v1/alerts", limit=1000)["items"]
        high = {a["id"] for a in alerts if a["level"] in ("high", "critical")}
        items = incidents()
        if len(items) != 1:
            return []
        detail = _get(api.url, tokens["unit-a:analyst"], f"/api/v1/incidents/{items[0]['id']}")
        return [detail] if high and high <= {a["id"] for a in detail["alerts"]} else []

    (incident,) = _wait("every high alert of unit-a in its incident", settled, 180, cluster.logs)
    assert incident["units"][0] == {"unit": "unit-a", "role": "owner"}

    def b_warnings() -> list[dict[str, Any]]:
        items = _get(api.url, tokens["unit-b:analyst"], "/api/v1/warnings")["items"]
        return [w for w in items if w["source_incident"] == incident["id"]]

    warnings = _wait("unit-b's warning", b_warnings, 180, cluster.logs)
    about = [w for w in warnings if {"type": "ip", "value": INDICATOR} in w["observables"]]
    assert len(about) == 1, warnings
    assert about[0]["hits_total"] == _expected_hits(lines["unit-b"]) > 0
    assert _get(api.url, tokens["unit-c:analyst"], "/api/v1/warnings")["items"] == []

    # Every alert coordinated, each into one incident at most, whichever scheduler did it.
    def coordinated() -> bool:
        with psycopg.connect(database) as conn:
            done = conn.execute("SELECT value FROM positions WHERE name = 'coordinate'").fetchone()
            last = conn.execute("SELECT max(id) FROM alerts").fetchone()
        return done is not None and last is not None and done[0] == last[0]

    assert _wait_until(coordinated, 120, 0.5), cluster.logs()
    with psycopg.connect(database) as conn:
        twice = conn.execute(
            "SELECT alert_id FROM incident_alerts GROUP BY alert_id HAVING count(*) > 1"
        ).fetchall()
    assert twice == []
    metrics = httpx.get(api.url + "/metrics", timeout=10).text
    owned = re.findall(r'vedette_duty_owned\{duty="scheduler",owner="([^"]+)"\} 1\.0', metrics)
    assert len(owned) == 1, metrics
    assert 'vedette_role_processes{role="scheduler"} 2.0' in metrics
    counted = dict(re.findall(r'vedette_coordination_total\{outcome="(\w+)"\} (\S+)', metrics))
    assert float(counted["alerts"]) >= 1, counted


def test_two_notifiers_deliver_every_notification_exactly_once(
    work_dir: Path,
    nats_server: str,
    database: str,
    clusters: list[Cluster],  # noqa: F811
) -> None:
    cluster = Cluster(work_dir, nats_server, database, partitions=2)
    clusters.append(cluster)
    cluster.add_units([("hq", None), ("branch-a", "hq"), ("branch-b", "hq")])
    ingest = {u: cluster.token(u, "ingest") for u in ("branch-a", "branch-b")}
    admin = cluster.token("hq", "admin")
    secret = "s" * 32
    port = free_port()
    # A slow receiver: one notifier's batch is still being sent when the other claims more.
    hook = WebhookReceiver(port, secret, hold=lambda _: time.sleep(0.05)).start()
    try:
        cluster.start(workers=1, schedulers=0, notifiers=0)
        with cluster.api.client(admin) as http:
            for n in range(CHANNELS):
                answer = http.post(
                    "/api/v1/notifications/channels",
                    json={
                        "unit": "hq",
                        "kind": "webhook",
                        "name": f"hook-{n}",
                        "min_level": "informational",
                        "secret": secret,
                        "kinds": ["alert"],
                        "config": {"url": f"http://127.0.0.1:{port}/hook", "timeout": 10},
                    },
                )
                assert answer.status_code == 201, answer.text
        records = windows_records()
        for i, unit in enumerate(("branch-a", "branch-b")):
            with cluster.api.client(ingest[unit]) as http:
                for batch in make_batches(records[i * 3000 : (i + 1) * 3000], 500, unit):
                    answer = http.post("/api/v1/events", content=batch.body, headers=NDJSON)
                    assert answer.status_code == 202, answer.text
            cluster.api.wait_stored(admin, unit, 3000, timeout=180)
        # The notifiers start on a full outbox: both claim from the same rows at once.
        for _ in range(2):
            cluster.add_notifier().start()
        alerts: list[dict[str, Any]] = []
        with cluster.api.client(admin) as http:

            def all_sent() -> bool:
                page = http.get("/api/v1/alerts", params={"limit": 1000}).json()
                assert page["next"] is None
                alerts[:] = page["items"]
                channels = http.get("/api/v1/notifications/channels").json()["items"]
                sent = sum(c["sent"] for c in channels)
                pending = sum(c["pending"] for c in channels)
                return bool(alerts) and sent == CHANNELS * len(alerts) and pending == 0

            assert _wait_until(all_sent, 180, 0.5), cluster.logs()
        # Exactly once: one delivery per alert and channel, no delivery id twice.
        items = hook.items()
        deliveries = Counter(item.delivery for item in items)
        assert len(items) == CHANNELS * len(alerts) >= 100, len(items)
        assert max(deliveries.values()) == 1, [d for d, n in deliveries.items() if n > 1]
        assert all(item.signature_ok for item in items)
        assert Counter(item.body["data"]["id"] for item in items) == Counter(
            {a["id"]: CHANNELS for a in alerts}
        )
    finally:
        hook.stop()

    # Both notifiers took part: each publishes its counters (role_members), and /metrics sums.
    def sent_by_notifier() -> dict[str, int]:
        with psycopg.connect(database) as conn:
            rows = conn.execute(
                "SELECT owner, stats FROM role_members WHERE role = 'notifier'"
            ).fetchall()
        return {
            owner: sum(n for _, outcome, n in stats["outcomes"] if outcome == "sent")
            for owner, stats in rows
        }

    assert _wait_until(lambda: sum(sent_by_notifier().values()) == len(items), 30)
    counts = sent_by_notifier()
    assert len(counts) == 2 and all(counts.values()), counts
    metrics = httpx.get(cluster.api.url + "/metrics", timeout=10).text
    found = re.findall(r'vedette_notifications_total\{[^}]*outcome="sent"\} (\S+)', metrics)
    assert sum(float(v) for v in found) == len(items), metrics


def test_two_apis_both_ingest_and_both_serve_the_same_alerts(
    work_dir: Path,
    nats_server: str,
    database: str,
    clusters: list[Cluster],  # noqa: F811
) -> None:
    cluster = Cluster(work_dir, nats_server, database, partitions=2)
    clusters.append(cluster)
    second = cluster.add_api()
    cluster.add_units([("hq", None), ("branch-a", "hq"), ("branch-b", "hq")])
    ingest = {u: cluster.token(u, "ingest") for u in ("branch-a", "branch-b")}
    analyst = cluster.token("hq", "analyst")
    cluster.start(workers=1)
    records = windows_records()
    for i, (unit, api) in enumerate((("branch-a", cluster.api), ("branch-b", second))):
        batches = make_batches(records[i * 2000 : (i + 1) * 2000], 400, unit)
        with api.client(ingest[unit]) as http:
            for batch in batches:
                answer = http.post(
                    "/api/v1/events",
                    content=batch.body,
                    headers={**NDJSON, "Idempotency-Key": batch.key},
                )
                assert answer.status_code == 202, answer.text
        # The same key through the other api is a duplicate: one stream, one ledger.
        other = second if api is cluster.api else cluster.api
        with other.client(ingest[unit]) as http:
            again = http.post(
                "/api/v1/events",
                content=batches[0].body,
                headers={**NDJSON, "Idempotency-Key": batches[0].key},
            )
        assert again.status_code == 200 and again.json()["duplicate"], again.text

    def view(api: Any) -> tuple[Any, ...]:
        with api.client(analyst) as http:
            alerts = http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
            units = http.get("/api/v1/units").json()["items"]
            hunted = http.post(
                "/api/v1/hunt", json={"sql": "SELECT unit, count(*) FROM events GROUP BY unit"}
            ).json()["rows"]
        return (
            sorted((a["id"], a["unit"], a["rule_id"], a["count"]) for a in alerts),
            sorted((u["name"], u["events_received"], u["events_stored"]) for u in units),
            sorted(map(tuple, hunted)),
        )

    whole = [("branch-a", 2000, 2000), ("branch-b", 2000, 2000), ("hq", 0, 0)]
    assert _wait_until(lambda: view(second)[1] == whole, 180), cluster.logs()
    first_view = view(cluster.api)
    assert first_view[1] == whole
    assert {a[1] for a in first_view[0]} == {"branch-a", "branch-b"}, first_view[0]
    assert first_view[2] == [("branch-a", 2000), ("branch-b", 2000)]
    assert view(second) == first_view
    # Neither api coordinates: one scheduler holds the duty, seen the same from both.
    for api in (cluster.api, second):
        metrics = httpx.get(api.url + "/metrics", timeout=10).text
        owned = re.findall(r'vedette_duty_owned\{duty="scheduler",owner="[^"]+"\} 1\.0', metrics)
        assert len(owned) == 1, metrics
    assert cluster.stop_all() == [0] * 5, cluster.logs()


@pytest.fixture(autouse=True)
def _datasets_present() -> None:
    """The OTRF recordings are needed (fails under CI when missing, via datasets.dataset)."""
    dataset(*OTRF)
