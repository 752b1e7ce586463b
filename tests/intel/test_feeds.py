"""Feeds load with the expected counts: STIX 2.x bundles, MISP events, manifests, CSV, lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datasets import dataset
from vedette.errors import FeedError
from vedette.intel.feeds import FeedSpec, load_feed, parse_time, read_feed_list
from vedette.intel.model import url_key


def stix(*parts: str) -> Path:
    return dataset("threat-intel", "stix2-json-schemas-examples", "examples", *parts)


def misp(*parts: str) -> Path:
    return dataset("threat-intel", "pymisp-testfiles", "tests", *parts)


# -- STIX ------------------------------------------------------------------------------------


def test_apt1_report_cidrs_domains_hashes_and_x509_reported() -> None:
    indicators, report = load_feed(FeedSpec(stix("threat-reports", "apt1.json")))
    # 12 indicator objects: 4 CIDR, 3 domains, 3 MD5 are matchable; 2 x509 patterns are not.
    assert report.format == "stix"
    assert report.indicators == 10
    assert report.by_type == {"ip": 4, "domain": 3, "md5": 3}
    assert len(report.unsupported) == 2
    assert all("x509-certificate:issuer" in w.detail for w in report.unsupported)
    assert {i.value for i in indicators if i.type == "ip"} == {
        "223.166.0.0/15",
        "58.246.0.0/15",
        "112.64.0.0/15",
        "139.226.0.0/15",
    }


def test_poisonivy_or_patterns_expand_and_bad_parts_are_reported() -> None:
    indicators, report = load_feed(FeedSpec(stix("threat-reports", "poisonivy.json")))
    # 25 indicator objects; the two file:name ones cannot be matched.
    assert report.indicators == 23
    reasons = [w.detail for w in report.unsupported]
    assert sum("file:name" in r for r in reasons) == 2
    # "domain autuo.xicp.net" is not a domain name: that alternative is reported, its IP kept.
    assert any("autuo.xicp.net" in r for r in reasons)
    assert ("ip", "60.10.1.115") in {(i.type, i.value) for i in indicators}
    # OR alternatives share the indicator's context (id, labels).
    first = next(i for i in indicators if i.value == "www.webserver.dynssl.com")
    siblings = [i for i in indicators if i.info is first.info]
    assert len(siblings) > 2 and all(i.id == first.id for i in siblings)
    assert "attribution" in first.info.labels


def test_indicator_to_c2_with_coa_hash_and_ip() -> None:
    indicators, report = load_feed(FeedSpec(stix("indicators-for-C2-with-COA.json")))
    assert report.indicators == 2
    assert sorted(i.type for i in indicators) == ["ip", "sha256"]
    # `indicates` malware: its name becomes context
    assert all(any(t.startswith("malware:") for t in i.info.tags) for i in indicators)


def test_single_indicator_and_email_patterns() -> None:
    _, single = load_feed(FeedSpec(stix("indicator-for-c2-ip-address.json")))
    assert single.indicators == 1 and single.by_type == {"ip": 1}
    _, email = load_feed(FeedSpec(stix("malicious-email-indicator-with-attachment.json")))
    assert email.indicators == 0
    assert len(email.unsupported) == 2  # subject MATCHES, attachment name MATCHES


def test_stix_validity_confidence_and_attack_from_relationships(tmp_path: Path) -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": "indicator--a",
                "pattern_type": "stix",
                "pattern": "[domain-name:value = 'evil.example']",
                "valid_from": "2024-01-01T00:00:00Z",
                "valid_until": "2024-06-01T00:00:00.1234567Z",
                "confidence": 80,
                "kill_chain_phases": [
                    {"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}
                ],
            },
            {
                "type": "attack-pattern",
                "id": "attack-pattern--x",
                "name": "DNS",
                "external_references": [
                    {"source_name": "mitre-attack", "external_id": "T1071.004"}
                ],
            },
            {
                "type": "relationship",
                "id": "relationship--r",
                "relationship_type": "indicates",
                "source_ref": "indicator--a",
                "target_ref": "attack-pattern--x",
            },
            {
                "type": "indicator",
                "id": "indicator--b",
                "pattern_type": "sigma",
                "pattern": "title: x",
            },
            {"type": "indicator", "id": "indicator--c", "pattern": "[ipv4-addr:value = "},
        ],
    }
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(bundle))
    indicators, report = load_feed(FeedSpec(path, source="Partner CERT"))
    assert len(indicators) == 1
    info = indicators[0].info
    assert info.source == "Partner CERT" and info.confidence == 80
    assert info.valid_from == parse_time("2024-01-01T00:00:00Z")
    assert info.valid_until is not None and info.valid_until.month == 6
    assert [a.technique_id for a in info.attack] == ["T1071.004"]
    assert "attack.command-and-control" in info.tags
    assert sorted(w.reason for w in report.unsupported) == [
        "stix-pattern-syntax",
        "stix-pattern-type",
    ]


# -- MISP ------------------------------------------------------------------------------------


def test_misp_event_with_objects_counts() -> None:
    indicators, report = load_feed(FeedSpec(misp("mispevent_testfiles", "existing_event.json")))
    # 7 domain attributes + object attributes: 12 domains, 12 ip-dst, 37 sha1 (filenames are
    # not matched on their own).
    assert report.format == "misp"
    assert report.indicators == 68
    assert report.by_type == {"domain": 19, "ip": 12, "sha1": 37}
    assert all(i.info.reference == "MISP event 9747" for i in indicators)
    assert any('misp-galaxy:threat-actor="Sofacy"' in i.info.tags for i in indicators)


def test_misp_long_event_composites_and_to_ids() -> None:
    _, report = load_feed(FeedSpec(misp("reportlab_testfiles", "long_event.json")))
    # to_ids attributes: 44 filename|md5 + 31 md5, 44 filename|sha256 + 40 sha256, 57 sha1,
    # 3 domain + 9 hostname, 8 ip-dst, 14 url, 1 imphash
    assert report.indicators == 251
    assert report.by_type == {
        "url": 14, "md5": 75, "sha256": 84, "domain": 12, "ip": 8, "sha1": 57, "imphash": 1,
    }  # fmt: skip
    assert report.skipped_not_for_ids == 21


def test_misp_to_ids_false_used_when_the_feed_says_so() -> None:
    _, strict = load_feed(FeedSpec(misp("misp_event.json")))
    _, loose = load_feed(FeedSpec(misp("misp_event.json"), to_ids_only=False))
    assert strict.indicators == 0 and strict.skipped_not_for_ids == 1
    assert loose.indicators == 1 and loose.by_type == {"url": 1}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("57c4445b-c548-4654-af0b-4be3950d210f.json", 3),
        (Path("reportlab_testfiles") / "galaxy_1.json", 4),
        (Path("reportlab_testfiles") / "mainly_objects_1.json", 17),
        (Path("reportlab_testfiles") / "sighting_1.json", 5),
    ],
)
def test_misp_samples_counts(name: str | Path, expected: int) -> None:
    _, report = load_feed(FeedSpec(misp(str(name))))
    assert report.indicators == expected


def test_misp_galaxy_attack_tags_and_certainty(tmp_path: Path) -> None:
    event = {
        "Event": {
            "id": "1234",
            "info": "Test",
            "Tag": [{"name": 'misp-galaxy:mitre-attack-pattern="PowerShell - T1059.001"'}],
            "Attribute": [
                {
                    "type": "ip-dst|port",
                    "value": "203.0.113.9|443",
                    "to_ids": True,
                    "uuid": "u-1",
                    "Tag": [{"name": 'osint:certainty="50"'}],
                },
                {"type": "domain", "value": "gone.example", "to_ids": True, "deleted": True},
                {"type": "hostname", "value": "bad name", "to_ids": True, "uuid": "u-3"},
            ],
        }
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    indicators, report = load_feed(FeedSpec(path))
    assert [(i.type, i.value) for i in indicators] == [("ip", "203.0.113.9")]
    info = indicators[0].info
    assert info.id == "u-1" and info.confidence == 50
    assert [a.technique_id for a in info.attack] == ["T1059.001"]
    assert [w.reason for w in report.unsupported] == ["misp-value"]


def test_misp_feed_manifest(tmp_path: Path) -> None:
    source = misp("reportlab_testfiles", "sighting_1.json")
    uuid = json.loads(source.read_text())["Event"]["uuid"]
    (tmp_path / f"{uuid}.json").write_text(source.read_text())
    (tmp_path / "manifest.json").write_text(
        json.dumps({uuid: {"info": "x"}, "00000000-0000-0000-0000-000000000000": {"info": "y"}})
    )
    indicators, report = load_feed(FeedSpec(tmp_path / "manifest.json"))
    assert report.format == "misp-manifest"
    assert len(indicators) == 5
    assert [w.reason for w in report.unsupported] == ["misp-event-missing"]


# -- CSV and lists -----------------------------------------------------------------------------


def test_plain_list_declared_and_recognised(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("# blocklist\n203.0.113.7\nevil[.]example  # defanged\n\nnot valid!\n")
    indicators, report = load_feed(FeedSpec(path))
    assert [(i.type, i.value) for i in indicators] == [
        ("ip", "203.0.113.7"),
        ("domain", "evil.example"),
    ]
    assert len(report.unsupported) == 1 and report.unsupported[0].line == 5
    declared, as_domains = load_feed(FeedSpec(path, type="domain"))
    assert [i.value for i in declared] == ["evil.example"]
    assert len(as_domains.unsupported) == 2  # the address is no domain; "not valid!" neither


def test_csv_with_context_columns(tmp_path: Path) -> None:
    path = tmp_path / "iocs.csv"
    path.write_text(
        "type,value,confidence,valid_until,attack,tags\n"
        "domain,evil.example,90,2030-01-01T00:00:00Z,T1071.004,apt;c2\n"
        "sha256," + "A" * 64 + ",20,,,\n"
        "md5,xyz,,,,\n"
    )
    indicators, report = load_feed(FeedSpec(path, source="Team list"))
    assert [(i.type, i.info.confidence) for i in indicators] == [("domain", 90), ("sha256", 20)]
    assert indicators[1].value == "a" * 64
    assert indicators[0].info.attack[0].technique_id == "T1071.004"
    assert indicators[0].info.tags == ("apt", "c2")
    assert report.unsupported[0].line == 4


def test_feed_list_yaml(tmp_path: Path) -> None:
    (tmp_path / "ips.txt").write_text("198.51.100.1\n")
    (tmp_path / "feeds.yaml").write_text(
        "feeds:\n  - path: ips.txt\n    type: ip\n    source: Blocklist\n    level: critical\n"
    )
    specs = read_feed_list(tmp_path / "feeds.yaml")
    assert specs[0].source == "Blocklist" and specs[0].level == "critical"
    indicators, _ = load_feed(specs[0])
    assert indicators[0].info.level == "critical"
    (tmp_path / "bad.yaml").write_text("feeds:\n  - path: ips.txt\n    levle: high\n")
    with pytest.raises(FeedError, match="unknown setting"):
        read_feed_list(tmp_path / "bad.yaml")


def test_url_canonical_form() -> None:
    assert url_key("HTTP://Evil.Example:80/a/B?x=1#frag") == "evil.example/a/B?x=1"
    assert url_key("https://evil.example/") == "evil.example"
    assert url_key("hxxps://evil[.]example:8443/p") == "evil.example:8443/p"


def test_misp_rest_response_and_event_list(tmp_path: Path) -> None:
    attribute = {"type": "url", "value": "hxxp://evil[.]example/x", "to_ids": True, "uuid": "a"}
    response = {"response": [{"Event": {"id": "1", "Attribute": [attribute]}}]}
    path = tmp_path / "search.json"
    path.write_text(json.dumps(response))
    indicators, report = load_feed(FeedSpec(path))
    assert report.format == "misp"
    assert [(i.type, i.value, i.info.reference) for i in indicators] == [
        ("url", "evil.example/x", "MISP event 1")
    ]


def test_bad_file_in_a_feed_folder_is_reported_and_the_rest_loads(tmp_path: Path) -> None:
    from vedette.intel.index import IndicatorIndex

    (tmp_path / "good.txt").write_text("203.0.113.9\n")
    (tmp_path / "broken.json").write_text("{oops")
    index = IndicatorIndex.from_feeds([tmp_path])
    assert len(index) == 1
    broken = next(r for r in index.reports if r.path.endswith("broken.json"))
    assert [w.reason for w in broken.unsupported] == ["feed-unreadable"]
    with pytest.raises(FeedError, match="cannot read JSON"):
        IndicatorIndex.from_feeds([tmp_path / "broken.json"])


def test_misp_csv_export(tmp_path: Path) -> None:
    path = tmp_path / "misp.csv"
    path.write_text(
        "uuid,event_id,category,type,value,comment,to_ids,date\n"
        "u1,1234,Network activity,ip-dst|port,203.0.113.9|443,C2,1,1700000000\n"
        "u2,1234,Payload delivery,filename|sha256,a.exe|" + "b" * 64 + ",,1,1700000000\n"
        "u3,1234,Network activity,domain,context.example,,0,1700000000\n"
        "u4,1234,Other,text,some note,,1,1700000000\n"
        "u5,1234,Network activity,hostname,bad host,,1,1700000000\n"
    )
    indicators, report = load_feed(FeedSpec(path))
    assert [(i.type, i.value) for i in indicators] == [("ip", "203.0.113.9"), ("sha256", "b" * 64)]
    first = indicators[0].info
    assert first.id == "u1" and first.reference == "MISP event 1234"
    assert first.description == "C2" and "Network activity" in first.labels
    assert report.skipped_not_for_ids == 1 and report.skipped_other_types == 1
    assert [w.line for w in report.unsupported] == [6]


def test_misp_style_stix_patterns_relax_ports_and_file_names(tmp_path: Path) -> None:
    patterns = {
        "indicator--ip": "[network-traffic:dst_ref.type = 'ipv4-addr' AND "
        "network-traffic:dst_ref.value = '203.0.113.9' AND network-traffic:dst_port = '443']",
        "indicator--file": "[file:name = 'a.exe' AND file:hashes.MD5 = '" + "c" * 32 + "']",
        "indicator--dns": "[domain-name:value = 'c2.example' AND "
        "domain-name:resolves_to_refs[*].value = '198.51.100.7']",
        "indicator--port": "[network-traffic:dst_port = '4444']",
    }
    bundle = {
        "type": "bundle",
        "id": "bundle--m",
        "objects": [{"type": "indicator", "id": k, "pattern": v} for k, v in patterns.items()],
    }
    path = tmp_path / "misp-stix.json"
    path.write_text(json.dumps(bundle))
    indicators, report = load_feed(FeedSpec(path))
    assert [(i.type, i.value, i.info.requires) for i in indicators] == [
        ("ip", "203.0.113.9", ()),
        ("md5", "c" * 32, ()),
        ("domain", "c2.example", (("ip", "198.51.100.7"),)),
    ]
    assert [(w.reason, w.detail.split(":")[0]) for w in report.unsupported] == [
        ("stix-pattern-unsupported", "indicator--port")
    ]
    assert sorted((w.reason, w.detail.split(":")[0]) for w in report.notes) == [
        ("stix-pattern-relaxed", "indicator--file"),
        ("stix-pattern-relaxed", "indicator--ip"),
    ]


def test_broad_and_internal_indicators_are_noted_but_loaded(tmp_path: Path) -> None:
    path = tmp_path / "noisy.txt"
    path.write_text("0.0.0.0/1\n10.1.2.3\n192.168.0.0/16\n203.0.113.5\n2001:db8::/16\n")
    indicators, report = load_feed(FeedSpec(path))
    assert len(indicators) == 5
    assert sorted((w.reason, w.detail.split(" ")[0]) for w in report.notes) == [
        ("broad-network", "0.0.0.0/1"),
        ("broad-network", "2001::/16"),
        ("internal-address", "10.1.2.3"),
        ("internal-address", "192.168.0.0/16"),
    ]
    many = tmp_path / "many.txt"
    many.write_text("".join(f"10.0.0.{i}\n" for i in range(30)))
    _, crowded = load_feed(FeedSpec(many))
    assert len(crowded.notes) == 21 and crowded.notes[-1].detail == "... and 10 more"
