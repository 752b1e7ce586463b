"""`vedette scan` fixes from the QA report: missing inputs, date-only --to, summary text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vedette.cli.main import main

RULE = """\
title: Accepted SSH login
id: 55555555-5555-4555-8555-555555555555
level: high
logsource: {product: linux}
detection:
  keywords: ['Accepted']
  condition: keywords
"""

AUTH_LOG = (
    "2026-11-20T02:10:01Z web-01 sshd[1]: Accepted password for deploy from 203.0.113.45\n"
    "2026-11-20T23:59:30Z web-01 sshd[2]: Accepted password for root from 203.0.113.46\n"
    "2026-11-21T00:00:00Z web-01 sshd[3]: Accepted password for root from 203.0.113.47\n"
)


@pytest.fixture()
def case(tmp_path: Path) -> tuple[Path, list[str]]:
    rule = tmp_path / "rule.yml"
    rule.write_text(RULE)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "auth.log").write_text(AUTH_LOG)
    return logs, ["--rules", str(rule), "--no-cache", "--no-progress", "-j", "1"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["scan", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_missing_input_warns_on_stderr_without_summary(
    capsys: pytest.CaptureFixture[str], case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    logs, options = case
    missing = tmp_path / "no" / "such"
    out_file = tmp_path / "out.jsonl"
    code, _, err = run(
        capsys,
        str(logs),
        str(missing),
        *options,
        "--no-summary",
        "-f",
        "jsonl",
        "-o",
        str(out_file),
    )
    assert code == 0
    assert f"vedette: warning: {missing}: no such file or folder" in err
    assert len(out_file.read_text().splitlines()) == 3


def test_date_only_to_includes_the_whole_day(
    capsys: pytest.CaptureFixture[str], case: tuple[Path, list[str]]
) -> None:
    logs, options = case
    code, out, _ = run(
        capsys, str(logs), *options, "--no-summary", "-f", "jsonl", "--to", "2026-11-20"
    )
    assert code == 0
    times = [json.loads(line)["timestamp"] for line in out.splitlines()]
    assert times == ["2026-11-20T02:10:01Z", "2026-11-20T23:59:30Z"]
    code, out, _ = run(
        capsys, str(logs), *options, "--no-summary", "-f", "jsonl",
        "--from", "2026-11-20", "--to", "2026-11-20T23:59:30Z",
    )  # fmt: skip
    assert [json.loads(line)["timestamp"] for line in out.splitlines()] == times


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("out.jsonl", '{"timestamp"'),
        ("out.json", "["),
        ("out.csv", "timestamp,"),
        ("out.txt", "Time"),
    ],
)
def test_output_format_follows_the_file_extension_without_f(
    capsys: pytest.CaptureFixture[str],
    case: tuple[Path, list[str]],
    tmp_path: Path,
    name: str,
    first: str,
) -> None:
    logs, options = case
    target = tmp_path / name
    code, _, _ = run(capsys, str(logs), *options, "--no-summary", "-o", str(target))
    assert code == 0
    assert target.read_text().lstrip().startswith(first)


def test_an_explicit_format_wins_over_the_extension(
    capsys: pytest.CaptureFixture[str], case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    logs, options = case
    target = tmp_path / "out.json"
    assert run(capsys, str(logs), *options, "--no-summary", "-f", "csv", "-o", str(target))[0] == 0
    assert target.read_text().startswith("timestamp,")


def test_no_readable_input_says_why_and_no_all_clear(
    capsys: pytest.CaptureFixture[str], case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, options = case
    junk = tmp_path / "notes.bin"
    junk.write_bytes(b"\x00\x01\x02garbage")
    code, out, err = run(capsys, "-", str(junk), *options, "--no-summary")
    assert code == 2
    assert "No detections." not in out
    assert "vedette: warning: -: no such file or folder (standard input is not read" in err
    error = next(line for line in err.splitlines() if line.startswith("vedette: error:"))
    assert error.startswith("vedette: error: no input could be read: ")
    assert "notes.bin" in error


def test_an_unknown_status_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], case: tuple[Path, list[str]]
) -> None:
    logs, options = case
    code, _, err = run(capsys, str(logs), *options, "--status", "bogus")
    assert code == 1
    assert "stable" in err and "bogus" in err


def test_help_lists_statuses_readers_feed_formats_and_the_zone_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "experimental, deprecated, unsupported" in text
    assert "evtx, json, syslog" in text
    assert "STIX 2.x bundle, MISP event" in text and "TA0006" in text
    assert "are taken as UTC" in text


def test_an_exclusion_naming_no_loaded_rule_warns(
    capsys: pytest.CaptureFixture[str], case: tuple[Path, list[str]]
) -> None:
    logs, options = case
    known = "55555555-5555-4555-8555-555555555555"
    code, _, err = run(
        capsys, str(logs), *options, "--no-summary", "--exclude-rule", "no-such-id",
        "--exclude-rule", known.upper(),
    )  # fmt: skip
    assert code == 0
    assert "vedette: warning: --exclude-rule no-such-id: no loaded rule" in err
    assert known.upper() not in err
