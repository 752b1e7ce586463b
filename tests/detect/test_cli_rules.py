"""`vedette rules list` and `vedette rules check`, driven in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.cli.main import main


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands cache compiled rules under $XDG_CACHE_HOME: keep that inside the test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


BAD = """\
title: Broken condition
id: 0d5b3a86-0000-4000-8000-000000000001
status: test
level: low
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image: x
    condition: selection and nothere
"""


def test_check_all_good(tmp_path: Path, capsys: pytest.CaptureFixture[str], rar_rule: str) -> None:
    (tmp_path / "good.yml").write_text(rar_rule)
    assert main(["rules", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rules loaded: 1" in out
    assert "not loaded: 0" in out
    assert list((tmp_path / "cache" / "vedette").glob("rules-*.pickle"))
    assert main(["rules", "check", str(tmp_path), "--no-cache"]) == 0
    assert "rules loaded: 1" in capsys.readouterr().out


def test_check_reports_each_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rar_rule: str
) -> None:
    (tmp_path / "good.yml").write_text(rar_rule)
    (tmp_path / "bad.yml").write_text(BAD)
    assert main(["rules", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "not loaded: 1" in out
    bad_line = next(line for line in out.splitlines() if "bad.yml" in line)
    assert "nothere" in bad_line
    assert "[Broken condition]" in bad_line
    assert f"{tmp_path / 'bad.yml'}:" in bad_line


def test_list(tmp_path: Path, capsys: pytest.CaptureFixture[str], rar_rule: str) -> None:
    (tmp_path / "good.yml").write_text(rar_rule)
    assert main(["rules", "list", "--rules", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()
    assert header.split("\t") == ["id", "level", "status", "title", "logsource", "techniques"]
    assert row.split("\t") == [
        "6f3e2987-db24-4c78-a860-b4f4095a7095",
        "high",
        "test",
        "Rar archive created",
        "windows/*/process_creation",
        "T1560.001",
    ]
    assert main(["rules", "list", "--rules", str(tmp_path), "--format", "table"]) == 0
    assert "Rar" in capsys.readouterr().out
    assert main(["rules", "list", "--rules", str(tmp_path), "--level", "critical"]) == 0
    assert "Rar archive created" not in capsys.readouterr().out


def test_list_without_rules_uses_the_default_rule_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path))  # no installed rule set: starter pack only
    assert main(["rules", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) >= 30  # the bundled starter pack
    assert all(len(row.split("\t")) == 6 for row in rows)


def test_check_with_placeholders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rar_rule: str
) -> None:
    rule = rar_rule.replace("Image|endswith: '\\rar.exe'", "User|expand: '%Admins%'")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "expand.yml").write_text(rule)
    assert main(["rules", "check", str(tmp_path / "rules")]) == 1
    assert "'%Admins%' has no value" in capsys.readouterr().out
    values = tmp_path / "values.yml"
    values.write_text("Admins: [root]\n")
    assert main(["rules", "check", str(tmp_path / "rules"), "--placeholders", str(values)]) == 0
