"""An incident exported as STIX 2.1 and MISP reads back through Vedette's own feed loaders."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vedette.alerts.export import misp_event, stix_bundle, stix_pattern
from vedette.intel.feeds import FeedSpec, load_feed
from vedette.intel.model import normalize
from vedette.intel.stix_pattern import parse_pattern

pytestmark = pytest.mark.embedded_only("no centre: STIX and MISP export in process")

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INCIDENT: dict[str, Any] = {
    "id": 7,
    "title": "CMSTP UAC bypass on WORKSTATION5",
    "severity": "high",
    "observables": [
        {"type": "ip", "value": "198.51.100.7"},
        {"type": "ip", "value": "2001:db8::1"},
        {"type": "domain", "value": "evil.example.org"},
        {"type": "url", "value": "https://evil.example.org/a'b\\c"},
        {"type": "sha256", "value": "c" * 64},
        {"type": "md5", "value": "b" * 32},
    ],
    "attack": [{"id": "T1218.003", "name": "CMSTP", "tactics": ["defense-evasion"]}],
    # What must never leave: alerts, hosts, units, timeline.
    "alerts": [{"id": 1, "host": "WORKSTATION5", "unit": "unit-a"}],
    "units": [{"unit": "unit-a", "role": "owner"}],
}
# As the feed loaders keep them (URLs without their scheme, and so on).
EXPECTED = {(o["type"], normalize(o["type"], o["value"])) for o in INCIDENT["observables"]}


@pytest.mark.parametrize("kind", ["stix", "misp"])
def test_export_reads_back_as_a_feed(tmp_path: Path, kind: str) -> None:
    data = stix_bundle(INCIDENT, now=NOW) if kind == "stix" else misp_event(INCIDENT, now=NOW)
    text = json.dumps(data)
    for secret in ('WORKSTATION5"', "unit-a"):
        assert secret not in text
    path = tmp_path / f"{kind}.json"
    path.write_text(text)
    indicators, report = load_feed(FeedSpec(path=path))
    assert {(i.type, i.value) for i in indicators} == EXPECTED, report
    techniques = {t.technique_id for i in indicators for t in i.info.attack}
    assert techniques == {"T1218.003"}
    # Same incident, same ids: a partner's import deduplicates.
    again = stix_bundle(INCIDENT, now=NOW) if kind == "stix" else misp_event(INCIDENT, now=NOW)
    assert again == data


def test_stix_patterns_parse_and_quote() -> None:
    pattern = stix_pattern("url", "https://x.example/a'b\\c")
    assert pattern == "[url:value = 'https://x.example/a\\'b\\\\c']"
    parse_pattern(pattern)
    assert stix_pattern("ip", "2001:db8::1") == "[ipv6-addr:value = '2001:db8::1']"
    assert stix_pattern("imphash", "a" * 32) is None
