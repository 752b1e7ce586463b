"""The indicator index: hand-made events hit and miss each indicator type."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datasets import dataset
from vedette.events import AttackRef, Event
from vedette.intel.feeds import FeedSpec
from vedette.intel.fields import FieldMap
from vedette.intel.index import IndicatorIndex
from vedette.intel.model import Indicator, IndicatorInfo

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SHA256 = "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"
MD5 = "001dd76872d80801692ff942308c64e6"


def index_of(*items: tuple[str, str], **info: object) -> IndicatorIndex:
    index = IndicatorIndex()
    shared = IndicatorInfo(source="test", **info)  # type: ignore[arg-type]
    for kind, value in items:
        index.add(Indicator(kind, value, shared))
    return index


def hits(index: IndicatorIndex, fields: dict[str, object], when: datetime = WHEN) -> list[str]:
    return [d.extra["indicator_value"] for d in index.match([Event(fields, timestamp=when)])]


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        ("evil.example", True),
        ("EVIL.Example.", True),
        ("cdn.evil.example", True),
        ("a.b.evil.example", True),
        ("notevil.example", False),
        ("evil.example.com.attacker.net", False),
        ("evil.examples", False),
        ("example", False),
    ],
)
def test_domain_and_subdomains_but_not_lookalikes(query: str, hit: bool) -> None:
    index = index_of(("domain", "evil.example"))
    assert hits(index, {"QueryName": query}) == (["evil.example"] if hit else [])


@pytest.mark.parametrize(
    ("address", "hit"),
    [
        ("10.20.0.0", True),
        ("10.20.255.255", True),
        ("10.19.255.255", False),
        ("10.21.0.0", False),
        ("::ffff:10.20.1.1", True),
        ("198.51.100.7", True),
        ("198.51.100.8", False),
        ("2001:db8:1::", True),
        ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", True),
        ("2001:db8:2::", False),
        ("2001:db8:0:ffff:ffff:ffff:ffff:ffff", False),
        ("fe80::1%eth0", False),
        ("-", False),
        ("not an ip", False),
    ],
)
def test_ip_and_cidr_edges_v4_and_v6(address: str, hit: bool) -> None:
    index = index_of(("ip", "10.20.0.0/16"), ("ip", "198.51.100.7"), ("ip", "2001:db8:1::/48"))
    assert bool(hits(index, {"DestinationIp": address})) is hit


@pytest.mark.parametrize(
    "fields",
    [
        {"SourceIp": "203.0.113.5"},
        {"id.orig_h": "203.0.113.5"},
        {"id.resp_h": "203.0.113.5"},
        {"src_ip": "203.0.113.5"},
        {"dest_ip": "203.0.113.5"},
        {"sourceIPAddress": "203.0.113.5"},
        {"IpAddress": "::ffff:203.0.113.5"},
    ],
)
def test_address_fields_of_each_log_type(fields: dict[str, object]) -> None:
    assert hits(index_of(("ip", "203.0.113.5")), fields) == ["203.0.113.5"]


def test_urls_normalised_and_their_hosts_checked() -> None:
    index = index_of(("url", "http://Evil.Example/payload.exe"), ("domain", "c2.example"))
    assert hits(index, {"c-uri": "https://evil.example:443/payload.exe"}) == [
        "evil.example/payload.exe"
    ]
    assert hits(index, {"c-uri": "http://evil.example/payload.exe?x=1"}) == [
        "evil.example/payload.exe"
    ]
    assert hits(index, {"c-uri": "http://evil.example/Payload.exe"}) == []
    assert hits(index, {"url": "http://www.c2.example/x"}) == ["c2.example"]
    # Suricata-style split host and path
    assert hits(index, {"http.hostname": "evil.example", "http.url": "/payload.exe"}) == [
        "evil.example/payload.exe"
    ]


def test_hashes_in_sysmon_strings_and_dedicated_fields() -> None:
    index = index_of(("sha256", SHA256), ("md5", MD5))
    sysmon = f"SHA1=AAAA,MD5=FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,SHA256={SHA256.upper()},IMPHASH={MD5}"
    assert hits(index, {"Hashes": sysmon}) == [SHA256]
    assert hits(index, {"Hashes": f"MD5={MD5}"}) == [MD5]
    assert hits(index, {"md5": MD5}) == [MD5]
    assert hits(index, {"Hashes": f"IMPHASH={MD5}"}) == []  # an import hash is not a file hash
    assert hits(index, {"CommandLine": SHA256}) == []  # not a hash field


def test_email_addresses() -> None:
    index = index_of(("email", "phisher@evil.example"))
    assert hits(index, {"sender": "Phisher <PHISHER@evil.example>"}) == ["phisher@evil.example"]
    assert hits(index, {"recipients": ["a@corp.example", "phisher@evil.example"]}) == [
        "phisher@evil.example"
    ]
    assert hits(index, {"sender": "x.phisher@evil.example"}) == []


def test_validity_window_relative_to_event_time() -> None:
    index = index_of(
        ("domain", "evil.example"),
        valid_from=datetime(2025, 1, 1, tzinfo=UTC),
        valid_until=datetime(2025, 6, 1, tzinfo=UTC),
    )
    assert hits(index, {"QueryName": "evil.example"}, WHEN)
    assert not hits(index, {"QueryName": "evil.example"}, datetime(2025, 7, 1, tzinfo=UTC))
    assert not hits(index, {"QueryName": "evil.example"}, datetime(2024, 12, 31, tzinfo=UTC))
    assert not hits(index, {"QueryName": "evil.example"}, datetime(2025, 6, 1, tzinfo=UTC))


def test_detection_shape() -> None:
    index = IndicatorIndex()
    info = IndicatorInfo(
        source="cert.json",
        id="indicator--1",
        reference="MISP event 1234",
        confidence=50,
        labels=("c2",),
        attack=(AttackRef("T1071.004"),),
    )
    index.add(Indicator("domain", "evil.example", info))
    event = Event({"QueryName": "x.evil.example", "Image": "C:\\a.exe"}, timestamp=WHEN)
    (detection,) = index.match([event])
    assert detection.kind == "intel"
    assert detection.rule_id == "indicator--1"
    assert detection.rule_title == "Known-bad domain evil.example (cert.json: MISP event 1234)"
    assert detection.level == "medium"
    assert detection.matched == ("QueryName",)
    assert detection.attack == (AttackRef("T1071.004"),)
    assert detection.event is event
    assert detection.extra["observed"] == {"QueryName": "x.evil.example"}
    assert detection.extra["indicator_type"] == "domain"
    assert detection.extra["confidence"] == 50


def test_one_detection_per_indicator_and_event_even_with_two_fields() -> None:
    index = index_of(("ip", "203.0.113.5"))
    (detection,) = index.match([Event({"SourceIp": "203.0.113.5", "DestinationIp": "203.0.113.5"})])
    assert detection.matched == ("SourceIp", "DestinationIp")


def test_two_sources_listing_one_value_give_two_detections() -> None:
    index = IndicatorIndex()
    index.add(Indicator("ip", "203.0.113.5", IndicatorInfo(source="a")))
    index.add(Indicator("ip", "203.0.113.5", IndicatorInfo(source="b")))
    detections = index.match([Event({"SourceIp": "203.0.113.5"})])
    assert sorted(d.extra["source"] for d in detections) == ["a", "b"]
    assert len({d.rule_id for d in detections}) == 2


def test_stix_and_pattern_needs_both_observables_in_the_event(tmp_path: Path) -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [
            {
                "type": "indicator",
                "id": "indicator--and",
                "pattern": "[ipv4-addr:value = '192.0.2.1' AND domain-name:value = 'c2.example']",
            }
        ],
    }
    path = tmp_path / "and.json"
    path.write_text(json.dumps(bundle))
    index = IndicatorIndex.from_feeds([path])
    assert not hits(index, {"DestinationIp": "192.0.2.1"})
    assert not hits(index, {"QueryName": "c2.example"})
    assert hits(index, {"DestinationIp": "192.0.2.1", "DestinationHostname": "c2.example"})


def test_to_ids_false_does_not_match(tmp_path: Path) -> None:
    event = {
        "Event": {
            "id": "7",
            "Attribute": [
                {"type": "domain", "value": "ids.example", "to_ids": True, "uuid": "1"},
                {"type": "domain", "value": "context.example", "to_ids": False, "uuid": "2"},
            ],
        }
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    index = IndicatorIndex.from_feeds([path])
    assert hits(index, {"QueryName": "ids.example"}) == ["ids.example"]
    assert hits(index, {"QueryName": "context.example"}) == []


def test_reimport_updates_and_never_duplicates(tmp_path: Path) -> None:
    sample = dataset("threat-intel", "pymisp-testfiles", "tests", "reportlab_testfiles")
    feed = sample / "long_event.json"
    index = IndicatorIndex.from_feeds([feed])
    first = len(index)
    counts = index.counts()
    index.load_feed(feed)
    assert len(index) == first == 251
    assert index.counts() == counts
    # a CSV without ids: key by type + value + source; new confidence replaces the old one
    csv = tmp_path / "list.csv"
    csv.write_text("type,value,confidence\ndomain,evil.example,10\n")
    index.load_feed(FeedSpec(csv))
    csv.write_text("type,value,confidence\ndomain,evil.example,90\n")
    index.load_feed(FeedSpec(csv))
    assert len(index) == first + 1
    (detection,) = [
        d for d in index.match([Event({"QueryName": "evil.example"})]) if d.kind == "intel"
    ]
    assert detection.level == "high"


def test_samples_match_their_own_observables() -> None:
    root = dataset("threat-intel")
    index = IndicatorIndex.from_feeds(
        [root / "stix2-json-schemas-examples" / "examples" / "threat-reports"]
    )
    event = Event({"DestinationIp": "223.167.1.1", "QueryName": "www.hugesoft.org"})
    titles = sorted(d.rule_title for d in index.match([event]))
    assert titles == [
        "Known-bad IP range 223.166.0.0/15 (apt1.json: HTRAN Hop Point Accessor)",
        "Known-bad domain hugesoft.org (apt1.json: FQDN hugesoft.org)",
    ]


def test_indicators_round_trip_and_custom_field_map() -> None:
    fields = FieldMap.from_data({"ip": ["peer"], "domain": ["name"]})
    index = IndicatorIndex(fields=fields)
    index.add(Indicator("ip", "192.0.2.0/24", IndicatorInfo(source="s")))
    index.add(Indicator("domain", "evil.example", IndicatorInfo(source="s")))
    assert sorted((i.type, i.value) for i in index.indicators()) == [
        ("domain", "evil.example"),
        ("ip", "192.0.2.0/24"),
    ]
    assert hits(index, {"peer": "192.0.2.9"}) == ["192.0.2.0/24"]
    assert hits(index, {"DestinationIp": "192.0.2.9"}) == []  # not in this field map


def test_index_pickles_for_worker_processes() -> None:
    import pickle

    index = index_of(("ip", "10.0.0.0/8"), ("domain", "evil.example"))
    assert hits(index, {"QueryName": "evil.example"})  # compiles the plan first
    clone = pickle.loads(pickle.dumps(index))
    assert hits(clone, {"DestinationIp": "10.1.2.3"}) == ["10.0.0.0/8"]
    assert hits(clone, {"QueryName": "x.evil.example"}) == ["evil.example"]
    assert len(clone) == 2


def test_revoked_stix_indicator_is_withdrawn_on_reimport(tmp_path: Path) -> None:
    indicator = {
        "type": "indicator",
        "id": "indicator--r",
        "pattern": "[domain-name:value = 'evil.example' OR ipv4-addr:value = '192.0.2.1']",
    }
    path = tmp_path / "feed.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": [indicator]}))
    index = IndicatorIndex.from_feeds([path])
    assert len(index) == 2 and hits(index, {"QueryName": "evil.example"})
    indicator["revoked"] = True
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": [indicator]}))
    report = index.load_feed(path)
    assert report.removed == 2 and len(index) == 0
    assert not hits(index, {"QueryName": "evil.example"})
    assert not hits(index, {"DestinationIp": "192.0.2.1"})


def test_real_suricata_and_zeek_events_through_the_readers() -> None:
    from vedette.sources import ReadReport, read_events

    suricata = dataset("misc-logs", "suricata")
    zeek_dns = dataset("misc-logs", "zeek")
    http = next(p for p in suricata.rglob("http.json"))
    dns = next(p for p in zeek_dns.rglob("dns.log.gz"))
    report = ReadReport()
    (http_event, *_) = next(iter(read_events(http, report=report)))
    (dns_event, *_) = next(iter(read_events(dns, report=report)))
    host = str(http_event.fields["http.hostname"])
    url = f"http://{host}{http_event.fields['http.url']}"
    query = str(dns_event.fields["query"])
    index = index_of(("url", url), ("domain", query), ("ip", str(dns_event.fields["id.resp_h"])))
    assert url.split("://", 1)[1] in hits(index, {**http_event.fields})
    found = hits(index, {**dns_event.fields})
    assert query in found and str(dns_event.fields["id.resp_h"]) in found


def test_retro_hunt_ignores_valid_from_but_not_expiry(tmp_path: Path) -> None:
    path = tmp_path / "fresh.csv"
    path.write_text(
        "type,value,valid_from,valid_until\n"
        "domain,new.example,2025-06-01T00:00:00Z,\n"
        "domain,old.example,2024-01-01T00:00:00Z,2024-06-01T00:00:00Z\n"
    )
    strict = IndicatorIndex.from_feeds([path])
    retro = IndicatorIndex.from_feeds([FeedSpec(path, ignore_valid_from=True)])
    assert not hits(strict, {"QueryName": "new.example"})  # WHEN is before valid_from
    assert hits(retro, {"QueryName": "new.example"}) == ["new.example"]
    assert not hits(retro, {"QueryName": "old.example"})  # expired stays expired


def test_dns_answers_checked_for_addresses_and_names() -> None:
    index = index_of(("ip", "203.0.113.0/24"), ("domain", "cdn.evil.example"))
    sysmon = "type:  5 cdn.evil.example;::ffff:203.0.113.77;"
    assert hits(index, {"QueryName": "innocent.example", "QueryResults": sysmon}) == [
        "cdn.evil.example",
        "203.0.113.0/24",
    ]
    assert hits(index, {"answers": ["198.51.100.1", "203.0.113.9"]}) == ["203.0.113.0/24"]


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        ("evil.example.com", True),
        ("login.evil.example.com", True),
        ("evil.example.com.attacker.net", False),
        ("notevil.example.com", False),
        ("example.com", False),
    ],
)
def test_lookalikes_of_a_three_label_domain(query: str, hit: bool) -> None:
    index = index_of(("domain", "evil.example.com"))
    assert bool(hits(index, {"DestinationHostname": query})) is hit


def test_repeated_hits_give_independent_detections() -> None:
    index = index_of(("ip", "203.0.113.5"), labels=("c2",))
    first, second = index.match(
        [Event({"SourceIp": "203.0.113.5"}), Event({"SourceIp": "203.0.113.5"})]
    )
    first.extra["labels"].append("mutated")
    first.extra["note"] = "x"
    assert second.extra["labels"] == ["c2"] and "note" not in second.extra
    assert first.rule_id == second.rule_id and first.event is not second.event


def test_index_cache_reused_until_a_feed_changes(tmp_path: Path) -> None:
    from vedette.intel import cache

    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    store = tmp_path / "cache"
    first = IndicatorIndex.from_feeds([feed], cache_dir=store)
    assert len(list(store.glob("intel-*.pickle"))) == 1
    again = IndicatorIndex.from_feeds([feed], cache_dir=store)
    assert len(again) == 1 and again.reports[0].path == first.reports[0].path
    assert hits(again, {"QueryName": "a.evil.example"}) == ["evil.example"]
    feed.write_text("evil.example\nbad.example\n")
    changed = IndicatorIndex.from_feeds([feed], cache_dir=store)
    assert len(changed) == 2
    assert len(list(store.glob("intel-*.pickle"))) == 2
    # a damaged entry is rebuilt, not trusted
    key = cache.fingerprint([FeedSpec(feed)], FieldMap.load())
    cache.cache_path(store, key).write_bytes(b"not a pickle")
    assert len(IndicatorIndex.from_feeds([feed], cache_dir=store)) == 2


def test_import_hashes_only_from_imphash_entries() -> None:
    imphash = "45b8703b2433d07f7542c032c41c5a30"
    index = index_of(("imphash", imphash))
    sysmon = f"MD5={imphash.upper()},SHA256={SHA256},IMPHASH={imphash.upper()}"
    (detection,) = index.match([Event({"Hashes": sysmon})])
    assert detection.extra["indicator_type"] == "imphash"
    assert detection.rule_title.startswith(f"Known-bad import hash {imphash}")
    assert hits(index, {"Hashes": f"MD5={imphash}"}) == []  # a file MD5 is not an imphash
    assert hits(index, {"md5": imphash}) == []


def test_host_names_ending_in_a_digit_are_names_not_addresses() -> None:
    index = index_of(("domain", "build01"), ("domain", "c2.example"), ("ip", "192.0.2.1"))
    assert hits(index, {"DestinationHostname": "build01"}) == ["build01"]
    assert hits(index, {"DestinationHostname": "srv1.c2.example"}) == ["c2.example"]
    assert hits(index, {"DestinationHostname": "192.0.2.1"}) == ["192.0.2.1"]
