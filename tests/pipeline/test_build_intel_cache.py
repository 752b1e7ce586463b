"""Indicator feeds are cached beside the compiled rules, as the rules are."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.intel import IndicatorIndex
from vedette.pipeline.build import DetectorConfig, load_indicators


def test_feeds_are_cached_in_the_scan_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = tmp_path / "bad-domains.txt"
    feed.write_text("evil.example\nworse.example\n")
    cache_dir = tmp_path / "cache"
    config = DetectorConfig(rule_paths=(), intel_feeds=(feed,), cache_dir=cache_dir)
    first = load_indicators(config)
    assert first is not None and len(first) == 2
    cached = list(cache_dir.iterdir())
    assert cached, "the built index was not kept in the cache dir"

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the feed was parsed again instead of loaded from the cache")

    monkeypatch.setattr(IndicatorIndex, "load_feed", no_parsing)
    second = load_indicators(config)
    assert second is not None and len(second) == 2


def test_no_cache_dir_writes_nothing(tmp_path: Path) -> None:
    feed = tmp_path / "bad-domains.txt"
    feed.write_text("evil.example\n")
    index = load_indicators(DetectorConfig(rule_paths=(), intel_feeds=(feed,)))
    assert index is not None and len(index) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad-domains.txt"]
