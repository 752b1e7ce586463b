"""`vedette rules update --file` says how many rule files load, not only how many there are (R9)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from vedette.cli.main import main

GOOD = """\
title: Good rule
id: 11111111-1111-4111-8111-111111111111
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\\\\good.exe'
    condition: selection
level: high
"""

BROKEN = {
    "bad_modifier.yml": GOOD.replace("endswith", "containz").replace("1111-1111", "2222-2222"),
    "bad_condition.yml": GOOD.replace("condition: selection", "condition: selection and (").replace(
        "1111-1111", "3333-3333"
    ),
    "undefined.yml": GOOD.replace("condition: selection", "condition: nothere").replace(
        "1111-1111", "4444-4444"
    ),
}


def make_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"rules/{name}", text)
    return path


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_update_reports_rule_files_that_do_not_load(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_zip(home / "bad.zip", {"good.yml": GOOD, **BROKEN})
    assert main(["rules", "update", "--file", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "4 rule files: 1 loads, 3 do not (see: vedette rules check " in out


def test_update_says_when_every_rule_file_loads(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_zip(home / "good.zip", {"good.yml": GOOD})
    assert main(["rules", "update", "--file", str(archive)]) == 0
    assert "1 rule file: all load (1 rule)" in capsys.readouterr().out
