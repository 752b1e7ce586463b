"""Scenarios end to end: real log lines, the real Sigma engine, the example correlation rules.

* SSH brute force over the loghub OpenSSH sample (2,000 real sshd lines), checked against a
  naive reference implementation of the sliding-window firing rule; and brute force followed by
  a password login over the bundled sample night (web-01 auth.log).
* Windows logon failure burst, password spraying and spraying-then-success over the bundled
  sample night (SRV-DC-01 Security log).
* A discovery-command burst over the bundled WS-FIN-07 Sysmon log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from datasets import dataset
from vedette.correlate import Correlator
from vedette.detect import Engine
from vedette.events import Detection, Event
from vedette.sources import ReadReport, read_events

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "correlation-examples"
SAMPLES = ROOT / "samples"


def engine_for(*names: str) -> Engine:
    texts = [(EXAMPLES / name).read_text(encoding="utf-8") for name in names]
    engine = Engine.from_yaml(*texts)
    assert engine.load_report.errors == [], engine.load_report.errors
    return engine


def correlate(engine: Engine, events: list[Event]) -> tuple[list[Detection], list[Detection]]:
    """(correlation detections, base detections shown) for time-ordered events."""
    correlator = Correlator.from_engine(engine)
    assert correlator.load_errors == []
    base = sorted(engine.match(events), key=lambda d: d.event.timestamp or datetime.min)
    found = correlator.process(base) + correlator.flush()
    shown = [d for d in base if d.rule_id not in correlator.suppressed_rule_ids]
    assert correlator.warnings == []
    return found, shown


def read(path: Path) -> list[Event]:
    report = ReadReport()
    events = [event for batch in read_events(str(path), report=report) for event in batch]
    assert events, report
    return sorted(events, key=lambda e: e.timestamp or datetime.min)


def reference_alert_times(times: list[datetime], span: timedelta, threshold: int) -> list[datetime]:
    """Naive sliding-window firing rule: count back one timespan; silent for a timespan after."""
    alerts: list[datetime] = []
    for position, now in enumerate(times):
        if alerts and now <= alerts[-1] + span:
            continue
        in_window = [t for t in times[: position + 1] if t >= now - span]
        if len(in_window) >= threshold:
            alerts.append(now)
    return alerts


def test_ssh_brute_force_over_real_sshd_lines() -> None:
    events = read(dataset("misc-logs", "syslog", "loghub", "OpenSSH", "OpenSSH_2k.log"))
    engine = engine_for("ssh_brute_force.yml")
    found, shown = correlate(engine, events)
    brute = [a for a in found if a.rule_title == "SSH brute force against a host"]
    failures = sorted(
        e.timestamp for e in events if e.timestamp and "Failed password for" in e.fields["message"]
    )
    expected = reference_alert_times(failures, timedelta(minutes=5), 10)
    assert expected  # the sample holds bursts
    assert [alert.event.timestamp for alert in brute] == expected
    assert all(alert.extra["group_by"] == {"hostname": "LabSZ"} for alert in brute)
    assert all("Failed password for" in alert.event.fields["message"] for alert in brute)
    assert [a.technique_id for a in brute[0].attack] == ["T1110", "T1110.001"]
    # the single failures stay behind the correlation (generate: false)
    assert not [d for d in shown if "Failed password" in d.event.fields["message"]]


def test_ssh_brute_force_then_password_login_in_the_bundled_sample() -> None:
    events = read(SAMPLES / "linux" / "web-01" / "auth.log")
    engine = engine_for("ssh_brute_force.yml")
    found, shown = correlate(engine, events)
    failures = [e for e in events if "Failed password for" in e.fields.get("message", "")]
    brute, chain = sorted(found, key=lambda d: d.event.timestamp or datetime.min)
    assert brute.rule_title == "SSH brute force against a host"
    # failures[0] is an unrelated typo at 02:12; the burst's 10th failure is failures[10]
    assert brute.event.timestamp == failures[10].timestamp
    assert brute.extra["value"] == 10
    assert chain.level == "critical"
    assert chain.event.fields["message"].startswith(
        "Accepted password for deploy from 203.0.113.45"
    )
    assert chain.extra["group_by"] == {"hostname": "web-01"}
    # the chain generates: the brute-force alert is output, and so is the password login
    assert [d.event.fields["message"][:24] for d in shown] == ["Accepted password for de"]


def test_windows_logon_failure_burst_and_password_spraying() -> None:
    events = read(SAMPLES / "windows" / "SRV-DC-01" / "security.jsonl")
    engine = engine_for("win_logon_failure_burst.yml", "password_spraying.yml")
    found, shown = correlate(engine, events)
    by_title = {alert.rule_title: alert for alert in found}
    burst = by_title["Windows logon failure burst from one source"]
    assert burst.extra["group_by"] == {
        "IpAddress": "192.0.2.57",
        "Computer": "SRV-DC-01.corp.example",
    }
    assert burst.extra["value"] == 5
    spray = by_title["Password spraying from one source"]
    assert spray.extra["value"] == 5
    assert len({e.fields["TargetUserName"] for e in events if e.fields["EventID"] == 4625}) == 5
    chain = by_title["Password spraying followed by a successful logon from the same source"]
    assert chain.level == "critical"
    assert chain.event.fields["EventID"] == 4624
    assert chain.event.fields["TargetUserName"] == "adm-mlopez"
    assert len(found) == 3
    # failures are behind their correlations; successes are output (the chain generates)
    assert {d.event.fields["EventID"] for d in shown} == {4624}


def test_discovery_command_burst() -> None:
    events = read(SAMPLES / "windows" / "WS-FIN-07" / "sysmon.jsonl")
    engine = engine_for("discovery_burst.yml")
    [alert], shown = correlate(engine, events)
    assert alert.extra["group_by"] == {"Computer": "WS-FIN-07.corp.example", "User": "CORP\\jdoe"}
    tools = {
        Path(e.fields["Image"].replace("\\", "/")).name
        for e in events
        if e.fields.get("EventID") == 1 and "\\" in str(e.fields.get("Image"))
    }
    assert {"whoami.exe", "net.exe", "nltest.exe"} <= tools
    assert alert.extra["value"] == 3
    assert alert.event.fields["Image"].lower().endswith("nltest.exe")
    assert shown == []
