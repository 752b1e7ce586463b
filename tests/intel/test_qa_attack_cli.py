"""QA: `vedette attack coverage` as a responder reads it (piped, repeated runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.cli.main import main

RULE = """
title: Rule {n}
id: 00000000-0000-0000-0000-00000000000{n}
status: test
level: high
tags: [{tag}]
logsource: {{product: windows, category: process_creation}}
detection:
  selection: {{CommandLine|contains: 'x{n}'}}
  condition: selection
"""


def test_coverage_ties_in_technique_order_and_not_squeezed_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # pytest-xdist workers set COLUMNS=80
    # Initial Access: three techniques with one rule each (a tie), written in scrambled order.
    tags = ["attack.t1566.001", "attack.t1078", "attack.t1078.003"]
    for n, tag in enumerate(tags, 1):
        (tmp_path / f"r{n}.yml").write_text(RULE.format(n=n, tag=tag))
    assert main(["attack", "coverage", "--rules", str(tmp_path), "--no-cache"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "Initial Access" in line)
    # One line per tactic even when not a terminal (80 columns would wrap it over several).
    assert row.index("T1078 Valid Accounts") < row.index("T1078.003") < row.index("T1566.001")


def test_show_a_tactic_by_short_name_id_or_name(capsys: pytest.CaptureFixture[str]) -> None:
    # `vedette scan --attack credential-access` accepts a tactic; `attack show` must explain it.
    for key in ("credential-access", "TA0006", "Credential Access"):
        assert main(["attack", "show", key]) == 0
        out = capsys.readouterr().out
        assert out.startswith("TA0006 Credential Access (credential-access)")
        assert "T1003 OS Credential Dumping" in out and "T1003.001" not in out


def test_show_unknown_name_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "show", "no-such-thing"]) == 1
    assert "no technique, tactic, group or software" in capsys.readouterr().out


@pytest.mark.parametrize("top", ["0", "-1"])
def test_groups_top_must_be_positive(
    tmp_path: Path, top: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = tmp_path / "result.jsonl"
    result.write_text('{"attack": [{"id": "T1003.001"}]}\n')
    with pytest.raises(SystemExit) as exc:
        main(["attack", "groups", "--from", str(result), "--top", top])
    assert exc.value.code == 1
    assert "at least 1" in capsys.readouterr().err


def test_coverage_navigator_in_a_missing_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was "internal error: FileNotFoundError" (exit 70) after the whole table had been printed.
    layer = tmp_path / "no-such-folder" / "coverage.json"
    assert main(["attack", "coverage", "--navigator", str(layer), "--no-cache"]) == 1
    captured = capsys.readouterr()
    assert "--navigator: folder" in captured.err and "does not exist" in captured.err
    assert captured.out == ""


def test_coverage_of_a_folder_without_rules_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("no rules here\n")
    assert (
        main(["attack", "coverage", "--rules", str(tmp_path), "--no-cache"]) == 1
    )  # a configuration error, as in scan
    assert "no rule files" in capsys.readouterr().err


def test_sweep_min_level_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    with pytest.raises(SystemExit) as exc:
        main(["intel", "sweep", "--intel", str(feed), str(tmp_path), "--min-level", "bogus"])
    assert exc.value.code == 1
    assert "invalid choice" in capsys.readouterr().err
