"""The JSONL contract: every record validates against docs/scan-detection.schema.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from scanfakes import make_event

from vedette.events import AttackRef, Detection, SourceRef
from vedette.output.jsonschema_lite import validate
from vedette.output.records import detection_json, detection_record, dumps

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "scan-detection.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text("utf-8"))


def sigma_detection() -> Detection:
    event = make_event(
        "case/a.evtx", 42, Image="C:\\Windows\\powershell.exe", CommandLine="powershell -enc AA=="
    )
    return Detection(
        rule_id="5b4d1c92-0000-4000-8000-000000000001",
        rule_title="Encoded PowerShell",
        level="high",
        event=event,
        status="test",
        tags=("attack.execution", "attack.t1059.001"),
        attack=(AttackRef("T1059.001", "PowerShell", ("execution",)),),
        matched=("selection_img", "selection_enc"),
        rule_path="rules/x.yml",
    )


def test_sigma_record_has_the_contract_keys_and_validates(schema: dict[str, Any]) -> None:
    record = detection_record(sigma_detection())
    assert validate(record, schema) == []
    assert record["timestamp"] == "2024-03-01T12:00:00Z"
    assert record["attack"] == [{"id": "T1059.001", "name": "PowerShell", "tactics": ["execution"]}]
    assert record["source"]["record_id"] == 42 and record["source"]["path"] == "case/a.evtx"
    assert record["matched"] == ["selection_img", "selection_enc"]
    assert record["event"]["CommandLine"] == "powershell -enc AA=="
    assert record["kind"] == "sigma"


def test_intel_record_uses_the_same_shape(schema: dict[str, Any]) -> None:
    event = make_event("zeek/dns.log", 0, QueryName="evil.example.com")
    event.source = SourceRef(path="zeek/dns.log", format="zeek", line=17)
    hit = Detection(
        rule_id="indicator--8e2e2d2b",
        rule_title="Known C2 domain evil.example.com",
        level="high",
        event=event,
        matched=("QueryName",),
        kind="intel",
        extra={"indicator": "evil.example.com", "type": "domain", "confidence": 80},
    )
    record = detection_record(hit)
    assert validate(record, schema) == []
    assert record["details"]["indicator"] == "evil.example.com"
    assert record["source"]["line"] == 17


def test_times_are_utc_with_z_whatever_the_offset() -> None:
    detection = sigma_detection()
    detection.event.timestamp = datetime(
        2024, 3, 1, 14, 30, 0, 1500, tzinfo=timezone(timedelta(hours=2))
    )
    assert detection_record(detection)["timestamp"] == "2024-03-01T12:30:00.001500Z"
    detection.event.timestamp = None
    assert detection_record(detection)["timestamp"] is None


def test_values_json_cannot_carry_become_text(schema: dict[str, Any]) -> None:
    detection = sigma_detection()
    detection.event.fields.update(
        Raw=b"\x00\x01",
        When=datetime(2024, 1, 1, tzinfo=UTC),
        Set={"b", "a"},
        Huge=2**70,
        Ref=SourceRef(path="a.evtx", format="evtx", record_id=3),
        Path=Path("/x"),
    )
    line = dumps(detection_record(detection))
    assert detection_json(detection) == line  # the writers' fast path writes the same bytes
    record = orjson.loads(line)
    assert validate(record, schema) == []
    assert record["event"]["Raw"] == "AAE="
    assert record["event"]["When"] == "2024-01-01T00:00:00Z"
    assert record["event"]["Set"] == ["a", "b"]
    assert record["event"]["Huge"] == str(2**70)
    assert record["event"]["Ref"]["record_id"] == 3
    assert b"\n" not in line


def test_validator_reports_each_violation(schema: dict[str, Any]) -> None:
    record = detection_record(sigma_detection())
    record["level"] = "severe"
    record["attack"][0]["id"] = "X1"
    del record["rule_id"]
    record["source"]["record_id"] = None
    errors = validate(record, schema)
    assert len(errors) == 4, errors
    assert any("missing 'rule_id'" in e for e in errors)
    assert any("$.level" in e for e in errors)
    assert any("$.attack[0].id" in e for e in errors)
    assert any("$.source" in e and "anyOf" in e for e in errors)
    assert validate(True, {"type": "integer"}) != []
