"""`vedette attack` prints what the user typed and file names literally, never as Rich markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.cli.main import main


def test_show_an_unknown_name_with_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "show", "[/x]"]) == 1
    assert "[/x]: no technique" in capsys.readouterr().out


def test_groups_from_a_file_with_brackets_in_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = tmp_path / "[red]case.jsonl"
    result.write_text("")
    assert main(["attack", "groups", "--from", str(result)]) == 0
    assert "[red]case.jsonl" in capsys.readouterr().out.replace("\n", "")
