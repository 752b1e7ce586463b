"""A cache entry is code (a pickle): one planted by another user must never be loaded."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from vedette.detect import Engine
from vedette.detect.private_cache import make_private_dir, read_private
from vedette.events import Event, LogSource

RULE = """
title: Whoami
id: 0e7b3c5a-1b2c-4d5e-8f90-123456789abd
logsource: {product: windows, category: process_creation}
detection:
    selection: {Image|endswith: '\\\\whoami.exe'}
    condition: selection
"""


class Planted:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _event() -> Event:
    return Event(
        {"Image": "C:\\Windows\\System32\\whoami.exe"},
        logsource=LogSource("windows", frozenset({"sysmon"}), frozenset({"process_creation"})),
    )


def _engine(rules: Path, cache_dir: Path) -> Engine:
    return Engine.from_paths([rules], cache_dir=cache_dir, scanner="hyperscan")


def _rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(RULE)
    return rules


def test_cache_folder_is_created_private(tmp_path: Path) -> None:
    cache_dir = tmp_path / "deep" / "cache"
    _engine(_rules(tmp_path), cache_dir)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    entries = list(cache_dir.iterdir())
    assert entries
    for entry in entries:
        assert stat.S_IMODE(entry.stat().st_mode) & 0o077 == 0, entry


def test_planted_entries_in_a_folder_others_can_write_are_not_run(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    cache_dir = tmp_path / "cache"
    _engine(rules, cache_dir)
    marker = tmp_path / "marker"
    planted = pickle.dumps(Planted(marker))
    entries = list(cache_dir.iterdir())
    assert {e.name.split("-")[0] for e in entries} >= {"rules", "engine", "hs", "hyperscan"}
    for entry in entries:
        entry.write_bytes(planted)  # every entry: rule set, condition code, Hyperscan bundle
    os.chmod(cache_dir, 0o777)  # anyone may now write the folder
    engine = _engine(rules, cache_dir)
    assert not marker.exists()
    assert [d.rule_title for d in engine.match([_event()])] == ["Whoami"]


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_an_entry_others_can_write_is_not_loaded(tmp_path: Path, mode: int) -> None:
    rules = _rules(tmp_path)
    cache_dir = tmp_path / "cache"
    _engine(rules, cache_dir)
    marker = tmp_path / "marker"
    for entry in cache_dir.iterdir():
        entry.write_bytes(pickle.dumps(Planted(marker)))
        os.chmod(entry, mode)
    engine = _engine(rules, cache_dir)
    assert not marker.exists()
    assert [d.rule_title for d in engine.match([_event()])] == ["Whoami"]


def test_a_symlinked_entry_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    assert make_private_dir(folder)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"data")
    (folder / "entry").symlink_to(target)
    (folder / "plain").write_bytes(b"data")
    assert read_private(folder / "entry") is None
    assert read_private(folder / "plain") == b"data"


def test_a_folder_others_can_write_is_not_made_private_by_us(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    assert not make_private_dir(folder)
    assert make_private_dir(tmp_path / "mine")
