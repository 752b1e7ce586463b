"""The command line framework: help, version, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vedette import __version__
from vedette.cli.main import build_registry, main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 1
    assert "vedette" in capsys.readouterr().out


def test_every_command_module_registers() -> None:
    registry = build_registry()
    assert ("version",) in registry.commands


def test_version_command_lists_engines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert "pysigma" in out and "evtx" in out


def test_help_lists_the_responder_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("scan", "rules", "version"):
        assert command in out
    assert "examples:" in out


def test_rules_group_has_update(capsys: pytest.CaptureFixture[str]) -> None:
    assert ("rules", "update") in build_registry().commands
    with pytest.raises(SystemExit):
        main(["rules", "--help"])
    assert "update" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scna", "logs"])
    assert exc.value.code == 1  # 1 = usage; 2 is "no input could be read"
    err = capsys.readouterr().err
    assert "invalid choice" in err and "Traceback" not in err


def test_vedette_error_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "home"))
    assert main(["rules", "update", "--file", str(tmp_path / "missing.zip")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vedette:")]
    assert len(errors) == 1
    assert errors[0].startswith("vedette: error: cannot read rule archive")


def test_unexpected_exception_is_reported_as_a_bug_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import vedette.cli.cmd_rules_update as cmd

    def broken(**kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cmd, "update_rules", broken)
    assert main(["rules", "update", "--file", str(tmp_path / "x.zip")]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "Traceback" not in err


def test_python_dash_m_vedette_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vedette", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"vedette {__version__}"


def test_usage_errors_exit_1_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    # 2 is reserved for "no input could be read"; argparse's own default would be 2.
    for argv in (["no-such-command"], ["version", "--no-such-option"], ["rules", "check"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 1, argv
        assert "error" in capsys.readouterr().err
