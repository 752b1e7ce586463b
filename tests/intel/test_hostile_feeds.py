"""Hostile feeds (issue 15): one bad indicator or row is refused alone, never the feed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vedette.intel.feeds import FeedSpec, load_feed

GOOD_ID = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
DEEP_ID = "indicator--9e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"


def _indicator(oid: str, pattern: str) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": oid,
        "created": "2024-01-01T00:00:00Z",
        "modified": "2024-01-01T00:00:00Z",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
    }


def test_stix_pattern_nested_300_deep_is_refused_alone(tmp_path: Path) -> None:
    deep = "(" * 300 + "[domain-name:value = 'deep.example']" + ")" * 300
    bundle = {
        "type": "bundle",
        "id": "bundle--1e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "objects": [
            _indicator(DEEP_ID, deep),
            _indicator(GOOD_ID, "[domain-name:value = 'evil.example']"),
        ],
    }
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(bundle))
    indicators, report = load_feed(FeedSpec(path))
    assert [i.value for i in indicators] == ["evil.example"]
    problems = [w for w in report.unsupported if DEEP_ID in str(w)]
    assert len(problems) == 1 and "nested" in str(problems[0])


def test_stix_comparison_nested_deep_is_refused_alone(tmp_path: Path) -> None:
    deep = "[" + "(" * 3000 + "domain-name:value = 'deep.example'" + ")" * 3000 + "]"
    bundle = {
        "type": "bundle",
        "id": "bundle--1e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "objects": [
            _indicator(DEEP_ID, deep),
            _indicator(GOOD_ID, "[domain-name:value = 'evil.example']"),
        ],
    }
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(bundle))
    indicators, report = load_feed(FeedSpec(path))
    assert [i.value for i in indicators] == ["evil.example"]
    assert [w.reason for w in report.unsupported] == ["stix-pattern-syntax"]


def test_a_nul_row_in_a_csv_feed_rejects_that_row(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_bytes(
        b"indicator,type\nevil.example,domain\nbad\x00.example,domain\n203.0.113.9,ip\n"
    )
    indicators, report = load_feed(FeedSpec(path))
    assert sorted(i.value for i in indicators) == ["203.0.113.9", "evil.example"]
    assert any("NUL" in str(w) for w in report.unsupported)


def test_everything_network_is_refused_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "ips.txt"
    path.write_text("0.0.0.0/0\n::/0\n203.0.113.9\n10.0.0.0/8\n")
    indicators, report = load_feed(FeedSpec(path))
    assert sorted(i.value for i in indicators) == ["10.0.0.0/8", "203.0.113.9"]
    refused = [w for w in report.unsupported if w.reason == "matches-everything"]
    assert len(refused) == 2 and "force_broad" in refused[0].detail
    forced, _ = load_feed(FeedSpec(path, force_broad=True))
    assert len(forced) == 4


def test_force_broad_is_a_feed_list_setting(tmp_path: Path) -> None:
    from vedette.intel.feeds import expand_feed_paths

    (tmp_path / "ips.txt").write_text("0.0.0.0/0\n")
    listing = tmp_path / "feeds.yml"
    listing.write_text("feeds:\n  - path: ips.txt\n    force_broad: true\n")
    (spec,) = expand_feed_paths([listing])
    assert spec.force_broad
    indicators, _ = load_feed(spec)
    assert [i.value for i in indicators] == ["0.0.0.0/0"]


def test_force_broad_on_the_command_line_keeps_the_everything_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vedette.cli.main import main

    feed = tmp_path / "nets.txt"
    feed.write_text("0.0.0.0/0\n203.0.113.0/24\n")
    assert main(["intel", "check", str(feed), "--type", "ip", "--json"]) == 0
    refused = json.loads(capsys.readouterr().out)
    assert main(["intel", "check", str(feed), "--type", "ip", "--json", "--force-broad"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["indicators"] == refused["indicators"] + 1 == 2
