"""The command line framework: help, version, no traceback."""

from __future__ import annotations

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
