"""Observable extraction: public vs private addresses, Sysmon hashes, URLs, domains, intel."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vedette.alerts.observables import (
    field_observables,
    intel_observables,
    merge,
    public_ip,
)

pytestmark = pytest.mark.embedded_only("no centre: observable extraction in process")


def _pairs(fields: dict[str, object], **options: bool) -> set[tuple[str, str]]:
    return {(o["type"], o["value"]) for o in field_observables(fields, **options)}


def test_public_addresses_kept_private_and_reserved_left_out() -> None:
    fields = {
        "DestinationIp": "140.82.113.3",
        "SourceIp": "10.0.2.15",
        "Gateway": "192.168.1.1",
        "Loop": "127.0.0.1",
        "Multicast": "224.0.0.251",
        "LinkLocal": "fe80::1",
        "Cgnat": "100.64.0.7",
        "Doc": "192.0.2.10",
        "V6": "2606:4700:4700::1111",
    }
    assert _pairs(fields) == {("ip", "140.82.113.3"), ("ip", "2606:4700:4700::1111")}
    with_private = _pairs(fields, include_private=True)
    assert ("ip", "10.0.2.15") in with_private and ("ip", "192.168.1.1") in with_private
    assert public_ip(" 8.8.8.8 ") == "8.8.8.8" and public_ip("8.8.8.8.8") is None


def test_sysmon_hashes_field_gives_each_digest_but_not_the_imphash() -> None:
    sha1 = "A" * 40
    md5 = "b" * 32
    sha256 = "C" * 64
    imphash = "d" * 32
    fields = {"Hashes": f"SHA1={sha1},MD5={md5},SHA256={sha256},IMPHASH={imphash}"}
    assert _pairs(fields) == {("sha1", "a" * 40), ("md5", md5), ("sha256", "c" * 64)}
    # Hex of a hash length in a field that is not a hash field is not taken as one.
    assert _pairs({"ProcessGuid": md5}) == set()
    assert _pairs({"sha256": "xyz"}) == set()


def test_urls_anywhere_and_their_hosts_internal_hosts_left_out() -> None:
    cmd = (
        "powershell -c iwr https://raw.githubusercontent.com/a/b.ps1 -o x; "
        "iwr http://intranet.corp/x; iwr http://203.0.113.9:8080/p http://8.8.4.4:80/q"
    )
    found = _pairs({"CommandLine": cmd})
    assert ("url", "https://raw.githubusercontent.com/a/b.ps1") in found
    assert ("domain", "raw.githubusercontent.com") in found
    assert ("url", "http://8.8.4.4:80/q") in found and ("ip", "8.8.4.4") in found
    assert not any("intranet.corp" in v for _, v in found)
    # 203.0.113.0/24 is a documentation range: neither the URL nor its address is kept.
    assert not any("203.0.113.9" in v for _, v in found)


def test_domains_only_from_dns_name_fields() -> None:
    assert _pairs({"QueryName": "Evil.Example.ORG."}) == {("domain", "evil.example.org")}
    assert _pairs({"Image": "C:\\Windows\\System32\\cmd.exe", "TargetFilename": "a.dll"}) == set()
    assert _pairs({"QueryName": "wpad.localdomain"}) == set()
    assert _pairs({"QueryName": "printer"}) == set()
    assert _pairs({"DestinationHostname": "dc01.corp.local"}) == set()


def test_nested_fields_are_named_with_dots() -> None:
    found = field_observables({"http": {"url": "https://evil.example.net/x"}})
    assert {"type": "url", "field": "http.url", "value": "https://evil.example.net/x"} in found


def test_intel_values_first_then_merge_dedups_and_bounds() -> None:
    intel = intel_observables(
        {"indicator_type": "ip", "observed": {"DestinationIp": "140.82.113.3"}}
    )
    assert intel == [{"type": "ip", "field": "DestinationIp", "value": "140.82.113.3"}]
    fields = field_observables({"DestinationIp": "140.82.113.3", "Other": "1.1.1.1"})
    merged = merge(intel, fields)
    assert [o["value"] for o in merged] == ["140.82.113.3", "1.1.1.1"]
    many = [{"type": "ip", "field": "f", "value": f"1.1.1.{i}"} for i in range(100)]
    assert len(merge(many, limit=50)) == 50


@given(
    address=st.ip_addresses(),
    left=st.sampled_from(["", " ", "\t", "  "]),
    right=st.sampled_from(["", " ", "\n"]),
    bracket=st.booleans(),
)
def test_the_cheap_shape_check_never_turns_away_an_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, left: str, right: str, bracket: bool
) -> None:
    # public_ip says no by a regex before asking ipaddress: every form ipaddress takes must pass.
    text = f"[{address}]" if bracket else str(address)
    assert public_ip(f"{left}{text}{right}", include_private=True) == str(address)


@given(st.text(max_size=60))
def test_the_shape_check_agrees_with_ipaddress_on_any_text(text: str) -> None:
    try:
        expected: str | None = str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        expected = None
    assert public_ip(text, include_private=True) == expected
