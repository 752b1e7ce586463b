"""Where rules are looked for: the starter pack always, the installed rule set when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.rulepacks import data_dir, default_rule_paths, installed_ruleset_dir, starter_pack_dir


def test_vedette_home_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "vh"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "vh"
    assert installed_ruleset_dir() == tmp_path / "vh" / "rules" / "sigma"


def test_xdg_data_home_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VEDETTE_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "vedette"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert data_dir() == tmp_path / "user" / ".local" / "share" / "vedette"


def test_default_paths_add_the_installed_set_only_when_present(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path))
    assert default_rule_paths() == [starter_pack_dir()]
    (tmp_path / "rules" / "sigma").mkdir(parents=True)
    assert default_rule_paths() == [starter_pack_dir(), tmp_path / "rules" / "sigma"]


def test_starter_pack_ships_inside_the_package() -> None:
    import vedette

    package_root = Path(vedette.__file__).resolve().parent
    assert starter_pack_dir().is_relative_to(package_root)
    assert len(list(starter_pack_dir().glob("*.yml"))) >= 30
