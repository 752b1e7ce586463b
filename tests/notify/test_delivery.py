"""Notifications through the real centre: a webhook receiver (checking the signature) and an
SMTP server (STARTTLS) that are down when the alerts are raised, then up; a syslog/CEF
listener and a webhook of another unit beside them. Each notification arrives once, routed by
unit and level; failures are visible on the API and in the metrics while the receivers are
down; a clean restart sends nothing again; a SIGKILL mid-dispatch loses nothing (the one
notification in flight is sent again with the same delivery id)."""

from __future__ import annotations

import email
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from receivers import Received, SmtpReceiver, SyslogTcpReceiver, WebhookReceiver, wait_for
from serverkit import Centre, add_token, admin, free_port, make_centre

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07"
LEVELS = ("informational", "low", "medium", "high", "critical")
UNITS = (("hq", None), ("branch-a", "hq"), ("branch-b", "hq"))
FAST = ["--timeout", "2", "--retry-base", "0.5", "--retry-cap", "2"]


def _ingest(centre: Centre, token: str, unit_token: str, unit: str) -> None:
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([line for line in body.splitlines() if line.strip()])
    with centre.client(unit_token) as http:
        answer = http.post(
            "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
    assert answer.status_code == 202, answer.text
    centre.wait_stored(token, unit, events)


def _alerts(http: httpx.Client, unit: str, at_least: str) -> dict[int, str]:
    items = http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
    floor = LEVELS.index(at_least)
    return {
        a["id"]: a["level"]
        for a in items
        if a["unit"] == unit and LEVELS.index(a["level"]) >= floor
    }


def _status(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/api/v1/notifications")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _hook_channel(home: Path, name: str, unit: str, port: int) -> str:
    """Add a webhook channel with the real admin command; its secret is on the last line."""
    # Alerts only: this test counts alert deliveries (incidents have their own test).
    out = admin(home, "channel", "add", "webhook", name, "--unit", unit, "--min-level", "low",
                "--kinds", "alert", "--url", f"http://127.0.0.1:{port}/hook", *FAST)  # fmt: skip
    return out.strip().splitlines()[-1]


def test_each_notification_arrives_once_after_the_receivers_come_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    centre = make_centre(home, UNITS)
    admin_token = add_token(home, "hq", "admin")
    ingest_a = add_token(home, "branch-a", "ingest")
    ingest_b = add_token(home, "branch-b", "ingest")
    hook_port, other_port = free_port(), free_port()
    hook = WebhookReceiver(hook_port, _hook_channel(home, "hq-hook", "hq", hook_port))
    other = WebhookReceiver(other_port, "b" * 32).start()  # branch-b's: up from the start
    smtp = SmtpReceiver(free_port(), tmp_path)
    siem = SyslogTcpReceiver(free_port()).start()
    centre.start()
    try:
        with centre.client(admin_token) as http:
            for channel in [
                {"unit": "branch-a", "kind": "email", "name": "a-mail", "min_level": "high",
                 "secret": "unused-without-username", "kinds": ["alert"],
                 "config": {"host": "127.0.0.1", "port": smtp.port, "from": "vedette@example.org",
                            "to": ["soc@example.org"], "ca_file": str(smtp.ca_file),
                            "timeout": 2, "retry_base": 0.5, "retry_cap": 2}},
                {"unit": "branch-b", "kind": "webhook", "name": "b-hook", "min_level": "low",
                 "secret": "b" * 32, "kinds": ["alert"],
                 "config": {"url": f"http://127.0.0.1:{other_port}/", "timeout": 2}},
                {"unit": "hq", "kind": "syslog", "name": "siem", "min_level": "medium",
                 "kinds": ["alert"],
                 "config": {"host": "127.0.0.1", "port": siem.port, "protocol": "tcp"}},
            ]:  # fmt: skip
                answer = http.post("/api/v1/notifications/channels", json=channel)
                assert answer.status_code == 201, answer.text
            bad = http.post("/api/v1/notifications/channels",
                            json={"unit": "hq", "kind": "webhook", "name": "x",
                                  "config": {"url": "file:///etc/passwd"}})  # fmt: skip
            assert bad.status_code == 400, bad.text

            _ingest(centre, admin_token, ingest_a, "branch-a")
            expected_hook = _alerts(http, "branch-a", "low")
            expected_mail = _alerts(http, "branch-a", "high")
            expected_siem = _alerts(http, "branch-a", "medium")
            assert expected_mail and set(expected_mail) < set(expected_hook)

            # Receivers down: the failures are on the API with their error, and in the metrics.
            def failing() -> bool:
                failed = _status(http)["failed"]
                return {"hq-hook", "a-mail"} <= {f["channel"] for f in failed}

            wait_for(failing, "failures of hq-hook and a-mail on the API")
            status = _status(http)
            errors = {f["channel"]: f["last_error"] for f in status["failed"]}
            assert "refused" in errors["hq-hook"].lower(), errors
            assert "refused" in errors["a-mail"].lower(), errors
            channels = {c["name"]: c for c in status["channels"]}
            assert channels["hq-hook"]["failing"] >= 1 and "secret" not in channels["hq-hook"]
            assert channels["hq-hook"]["secret_set"] is True
            metrics = httpx.get(centre.url + "/metrics").text
            assert 'vedette_notifications_total{channel="hq-hook",outcome="failed"}' in metrics

            hook.start()
            smtp.start()
            wait_for(lambda: _status(http)["pending"] == [], "every notification sent")

            # A clean restart sends nothing again; new alerts (branch-b) still go out.
            assert centre.stop() == 0
            centre.start()
            _ingest(centre, admin_token, ingest_b, "branch-b")
            expected_b = _alerts(http, "branch-b", "low")
            wait_for(lambda: len(other.items()) >= len(expected_b), "branch-b's notifications")
            wait_for(lambda: _status(http)["pending"] == [], "every notification sent")
            status = _status(http)
            metrics = httpx.get(centre.url + "/metrics").text
    finally:
        centre.stop()
        hook.stop()
        other.stop()
        smtp.stop()
        siem.stop()

    hooked = hook.items()
    assert all(item.signature_ok for item in hooked)
    deliveries = Counter(item.delivery for item in hooked)
    assert set(deliveries.values()) == {1}, deliveries
    a_ids = [i.body["data"]["id"] for i in hooked if i.body["data"]["unit"] == "branch-a"]
    b_ids = [i.body["data"]["id"] for i in hooked if i.body["data"]["unit"] == "branch-b"]
    assert sorted(a_ids) == sorted(expected_hook)
    assert sorted(b_ids) == sorted(expected_b)  # hq's channel covers the units below it
    assert sorted(i.body["data"]["id"] for i in other.items()) == sorted(expected_b)
    assert all(i.signature_ok for i in other.items())

    mails = [(email.message_from_bytes(raw), tls) for raw, tls in smtp.items()]
    assert all(tls for _, tls in mails)
    mail_ids = Counter(m["X-Vedette-Delivery"] for m, _ in mails)
    assert set(mail_ids.values()) == {1}
    subjects = [m["Subject"] for m, _ in mails]
    assert len(subjects) == len(expected_mail)
    assert all(s.startswith(("[Vedette] HIGH alert in branch-a", "[Vedette] CRITICAL alert"))
               for s in subjects), subjects  # fmt: skip

    cef = siem.items()
    assert len(cef) == len(expected_siem) + len(_levels_at_least(expected_b, "medium"))
    assert all(" CEF:0|Vedette|Vedette|" in m and m.startswith("<") for m in cef), cef[:2]

    assert status["channels"] and all(c["pending"] == 0 for c in status["channels"])
    sent = {c["name"]: c["sent"] for c in status["channels"]}
    assert sent["hq-hook"] == len(expected_hook) + len(expected_b)
    assert sent["a-mail"] == len(expected_mail)


def _levels_at_least(alerts: dict[int, str], floor: str) -> list[int]:
    return [i for i, level in alerts.items() if LEVELS.index(level) >= LEVELS.index(floor)]


def test_sigkill_mid_dispatch_loses_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    centre = make_centre(home, UNITS)
    admin_token = add_token(home, "hq", "admin")
    ingest_a = add_token(home, "branch-a", "ingest")
    port = free_port()
    arrived, release = threading.Event(), threading.Event()
    held: list[Received] = []

    def hold(item: Received) -> None:
        # The first request stays unanswered until the centre has been killed.
        if not held:
            held.append(item)
            arrived.set()
            release.wait(60)

    hook = WebhookReceiver(port, _hook_channel(home, "hq-hook", "hq", port), hold=hold).start()
    centre.start()
    try:
        with centre.client(admin_token) as http:
            body = (SAMPLES / "sysmon.jsonl").read_bytes()
            with centre.client(ingest_a) as ingest:
                answer = ingest.post("/api/v1/events", content=body,
                                     headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
            assert answer.status_code == 202
            assert arrived.wait(90), centre.log()
            centre.kill()
            release.set()
            centre.start()
            events = len([line for line in body.splitlines() if line.strip()])
            centre.wait_stored(admin_token, "branch-a", events)
            expected = _alerts(http, "branch-a", "low")
            wait_for(lambda: _status(http)["pending"] == [], "every notification sent")
    finally:
        centre.stop()
        hook.stop()
    items = hook.items()
    assert all(item.signature_ok for item in items)
    assert sorted({i.body["data"]["id"] for i in items}) == sorted(expected)
    deliveries = Counter(item.delivery for item in items)
    # At-least-once: only the delivery in flight at the kill came twice, with the same id,
    # so a receiver that drops seen ids takes each notification exactly once.
    assert {d for d, n in deliveries.items() if n > 1} == {held[0].delivery}
    assert deliveries[held[0].delivery] == 2
