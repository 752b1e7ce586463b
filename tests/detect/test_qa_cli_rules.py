"""QA: `vedette rules list` points at a runnable check; `rules check` with a mistyped path."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from vedette.cli.main import main

BROKEN = """\
title: Broken condition
id: 0d5b3a86-0000-4000-8000-0000000000aa
status: test
level: low
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image: x
    condition: selection and nothere
"""


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "home"))


def test_list_prints_the_check_command_for_the_default_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A responder who sees "rule(s) not loaded" must be able to paste the next command: the bare
    # `vedette rules check` is a usage error (PATH is required).
    installed = tmp_path / "home" / "rules" / "sigma"
    installed.mkdir(parents=True)
    (installed / "broken.yml").write_text(BROKEN)
    assert main(["rules", "list"]) == 0
    hint = capsys.readouterr().err.splitlines()[-1].strip()
    assert hint.startswith("vedette rules check ") and str(installed) in hint
    assert main(shlex.split(hint)[1:]) == 1
    out = capsys.readouterr().out
    assert "broken.yml:9" in out and "nothere" in out


def test_check_of_a_missing_path_is_an_error_not_an_all_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", str(tmp_path / "no-such-rules")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_check_of_a_folder_without_rules_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "auth.log").write_text("not a rule\n")
    assert main(["rules", "check", str(tmp_path / "logs")]) == 1
    assert "no rule files" in capsys.readouterr().err


def test_list_table_shows_titles_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # pytest-xdist workers set COLUMNS=80
    # A title is data: "[/b]" is not a Rich closing tag (it raised MarkupError: exit 70).
    rule = BROKEN.replace("Broken condition", "Any accepted [/b] login").replace(
        "selection and nothere", "selection"
    )
    (tmp_path / "r.yml").write_text(rule)
    assert main(["rules", "list", "--rules", str(tmp_path / "r.yml"), "--format", "table"]) == 0
    assert "Any accepted [/b] login" in capsys.readouterr().out
