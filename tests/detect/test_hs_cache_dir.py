"""An unusable cache folder never stops a scan: the databases are compiled in memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.detect import Engine
from vedette.events import Event, LogSource

RULE = """
title: Whoami
id: 0e7b3c5a-1b2c-4d5e-8f90-123456789abc
logsource: {product: windows, category: process_creation}
detection:
    selection: {Image|endswith: '\\\\whoami.exe'}
    condition: selection
"""


def _event() -> Event:
    return Event(
        {"Image": "C:\\Windows\\System32\\whoami.exe"},
        logsource=LogSource("windows", frozenset({"sysmon"}), frozenset({"process_creation"})),
    )


@pytest.mark.parametrize("kind", ["missing-parent-file", "file-instead-of-folder"])
def test_unwritable_cache_dir_still_matches(tmp_path: Path, kind: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    # A cache folder below a regular file can be neither created nor written.
    cache_dir = blocker / "cache" if kind == "missing-parent-file" else blocker
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(RULE)
    engine = Engine.from_paths([rules], cache_dir=cache_dir, scanner="hyperscan")
    assert [d.rule_title for d in engine.match([_event()])] == ["Whoami"]


def test_second_load_takes_the_translation_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vedette.detect import hs_scanner

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(RULE)
    cache_dir = tmp_path / "cache"
    Engine.from_paths([rules], cache_dir=cache_dir, scanner="hyperscan")
    assert list(cache_dir.glob("hs-items-*.pickle"))

    def no_translation(*args: object) -> None:
        raise AssertionError("translated again")

    monkeypatch.setattr(hs_scanner, "translate_plan", no_translation)
    engine = Engine.from_paths([rules], cache_dir=cache_dir, scanner="hyperscan")
    assert [d.rule_title for d in engine.match([_event()])] == ["Whoami"]
    # A changed rule is another rule set: translated afresh, not taken from the cache.
    (rules / "whoami.yml").write_text(RULE.replace("whoami.exe", "net.exe"))
    with pytest.raises(AssertionError, match="translated again"):
        Engine.from_paths([rules], cache_dir=cache_dir, scanner="hyperscan")
