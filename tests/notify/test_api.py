"""The notifications API through the real centre: admin right, scoping to the caller's units
(another unit's channel does not exist for it), checked input, and a delete that says how many
unsent notifications it dropped."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from receivers import wait_for
from serverkit import add_token, free_port, make_centre

CHANNELS = "/api/v1/notifications/channels"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07" / "sysmon.jsonl"


def test_channels_are_admin_only_and_scoped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    centre = make_centre(home, (("hq", None), ("branch-a", "hq"), ("branch-b", "hq")))
    hq_admin = add_token(home, "hq", "admin")
    hq_analyst = add_token(home, "hq", "analyst")
    b_admin = add_token(home, "branch-b", "admin")
    ingest_a = add_token(home, "branch-a", "ingest")
    down = f"http://127.0.0.1:{free_port()}/never-up"
    centre.start()
    try:
        with centre.client(hq_admin) as hq, centre.client(b_admin) as b:
            made = hq.post("/api/v1/notifications/channels", json={
                "unit": "branch-a", "kind": "webhook", "name": "a-hook", "min_level": "low",
                "config": {"url": down, "timeout": 1, "retry_base": 60}})  # fmt: skip
            assert made.status_code == 201, made.text
            a_id, secret = made.json()["id"], made.json()["secret"]
            assert len(secret) >= 32
            again = hq.post(
                CHANNELS,
                json={"unit": "hq", "kind": "webhook", "name": "a-hook", "config": {"url": down}},
            )
            assert again.status_code == 400 and "exists" in again.text
            # branch-b's admin: hq's units do not exist for it, its own do.
            foreign = b.post(
                CHANNELS,
                json={"unit": "branch-a", "kind": "syslog", "name": "x", "config": {"host": "h"}},
            )
            assert foreign.status_code == 404, foreign.text
            own = b.post("/api/v1/notifications/channels", json={
                "unit": "branch-b", "kind": "syslog", "name": "b-siem",
                "config": {"host": "127.0.0.1", "port": free_port()}})  # fmt: skip
            assert own.status_code == 201 and "secret" not in own.json()
            assert [c["name"] for c in b.get("/api/v1/notifications/channels").json()["items"]] == [
                "b-siem"
            ]
            assert b.delete(f"/api/v1/notifications/channels/{a_id}").status_code == 404
            names = [c["name"] for c in hq.get("/api/v1/notifications/channels").json()["items"]]
            assert names == ["a-hook", "b-siem"]

            with centre.client(hq_analyst) as analyst:
                assert analyst.get("/api/v1/notifications").status_code == 403
                assert analyst.get("/api/v1/notifications/channels").status_code == 403
            assert httpx.get(centre.url + "/api/v1/notifications").status_code == 401

            with centre.client(ingest_a) as ingest:
                sent = ingest.post("/api/v1/events", content=SAMPLE.read_bytes(),
                                   headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
            assert sent.status_code == 202
            wait_for(lambda: hq.get("/api/v1/notifications").json()["failed"], "a failure")
            # The batch's alerts, then the incidents the coordinator opens from them, each
            # queue notifications: read the pending rows once nothing more comes.
            wait_for(lambda: _pending_settled(hq), "the outbox to settle")
            status = hq.get("/api/v1/notifications").json()
            assert {f["channel"] for f in status["failed"]} == {"a-hook"}
            assert b.get("/api/v1/notifications").json()["pending"] == []  # not branch-b's
            pending = len(status["pending"])
            assert pending >= 1
            metrics = httpx.get(centre.url + "/metrics").text
            assert 'vedette_notifications_total{channel="a-hook",outcome="failed"}' in metrics
            wait_for(
                lambda: (
                    f'vedette_notifications_pending{{channel="a-hook"}} {pending}.0'
                    in httpx.get(centre.url + "/metrics").text
                ),
                "the pending gauge",
            )
            gone = hq.delete(f"/api/v1/notifications/channels/{a_id}")
            assert gone.status_code == 200 and gone.json()["unsent_dropped"] == pending
            assert hq.get("/api/v1/notifications").json()["pending"] == []
            audit = hq.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
            actions = [a["action"] for a in audit]
            assert "channel.add" in actions and "channel.delete" in actions
            assert secret not in str(audit)
    finally:
        centre.stop()


def _pending_settled(client: httpx.Client) -> bool:
    """True when the pending notifications stay the same for two seconds."""
    before = len(client.get("/api/v1/notifications").json()["pending"])
    time.sleep(2.0)
    return before > 0 and len(client.get("/api/v1/notifications").json()["pending"]) == before
