"""`vedette attack ...` and `vedette intel ...` driven in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datasets import dataset
from vedette.cli.main import main
from vedette.output.jsonschema_lite import validate


def test_attack_coverage_with_navigator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], powershell_rule: str
) -> None:
    (tmp_path / "rule.yml").write_text(powershell_rule)
    layer = tmp_path / "layer.json"
    assert main(["attack", "coverage", "--rules", str(tmp_path / "rule.yml"),
                 "--navigator", str(layer), "--techniques", "--no-cache"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Execution" in out and "T1059.001" in out and "PowerShell" in out
    data = json.loads(layer.read_text())
    assert [t["techniqueID"] for t in data["techniques"] if "score" in t] == ["T1059.001"]


def test_attack_coverage_missing_rules_path_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["attack", "coverage", "--rules", str(tmp_path / "nope"), "--no-cache"]) == 1
    )  # as scan: a bad --rules path is a usage error
    assert "no such rule file" in capsys.readouterr().err


def test_attack_groups_labels_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tmp_path / "result.jsonl"
    result.write_text(
        "\n".join(json.dumps({"attack": [{"id": t}]}) for t in ("T1059.001", "T1003.001", "T1078"))
    )
    assert main(["attack", "groups", "--from", str(result), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "HINT, NOT ATTRIBUTION" in out
    assert main(["attack", "groups", "--from", str(result), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["note"] == "hint, not attribution" and len(data["groups"]) == 10


def test_attack_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "show", "T1003.001", "APT29", "S0002"]) == 0
    out = capsys.readouterr().out
    assert "LSASS Memory" in out and "credential-access" in out
    # The description, wherever the console's width wrapped it.
    assert "credential material stored in the process memory" in " ".join(out.split())
    assert "G0016" in out and "Mimikatz" in out
    assert main(["attack", "show", "T9999"]) == 1


def test_intel_check_reports_counts_and_unsupported(capsys: pytest.CaptureFixture[str]) -> None:
    apt1 = dataset("threat-intel", "stix2-json-schemas-examples", "examples", "threat-reports",
                   "apt1.json")  # fmt: skip
    assert main(["intel", "check", str(apt1), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["indicators"] == 10
    assert len(data["feeds"][0]["unsupported"]) == 2
    assert main(["intel", "check", str(apt1)]) == 0
    assert "x509-certificate:issuer" in capsys.readouterr().out


def test_intel_check_bad_feed_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["intel", "check", str(bad)]) == 1
    assert "cannot read JSON" in capsys.readouterr().err


def test_intel_sweep_over_jsonl_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "sysmon.jsonl"
    event = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 22,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "WS1",
                "TimeCreated": {"#attributes": {"SystemTime": "2025-01-01T00:00:00Z"}},
            },
            "EventData": {"QueryName": "cdn.evil.example", "Image": "C:\\x.exe"},
        }
    }
    logs.write_text(json.dumps(event) + "\n")
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    assert main(["intel", "sweep", "--intel", str(feed), str(logs), "--jsonl", "--no-cache"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["rule_title"] for x in lines] == ["Known-bad domain evil.example (feed.txt)"]
    assert lines[0]["details"]["observed"] == {"QueryName": "cdn.evil.example"}
    # The sweep writes the documented JSONL contract of `vedette scan -f jsonl`, nothing else.
    schema_path = Path(__file__).resolve().parents[2] / "docs" / "scan-detection.schema.json"
    schema = json.loads(schema_path.read_text("utf-8"))
    assert [validate(line, schema) for line in lines] == [[]]
    assert lines[0]["kind"] == "intel" and lines[0]["host"] == "WS1"


def test_attack_coverage_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], powershell_rule: str
) -> None:
    (tmp_path / "rule.yml").write_text(powershell_rule)
    layer = tmp_path / "layer.json"
    assert main(["attack", "coverage", "--rules", str(tmp_path), "--json", "--no-cache",
                 "--navigator", str(layer)]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["rules"] == 1
    assert data["techniques"] == {"T1059.001": ["11111111-1111-1111-1111-111111111111"]}
    execution = next(t for t in data["tactics"] if t["tactic"] == "execution")
    assert execution["rules"] == 1 and execution["techniques_covered"] == 1
    assert layer.exists()
