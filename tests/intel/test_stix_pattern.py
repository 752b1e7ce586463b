"""The STIX patterning parser and its reduction to matchable observables."""

from __future__ import annotations

import pytest

from vedette.intel.stix_pattern import (
    Comparison,
    PatternError,
    Unsupported,
    parse_pattern,
    reduce_pattern,
)


def test_single_comparison() -> None:
    assert reduce_pattern(parse_pattern("[ipv4-addr:value = '10.0.0.0']")) == [[("ip", "10.0.0.0")]]


def test_or_inside_and_between_observations() -> None:
    tree = parse_pattern(
        "[domain-name:value = 'a.example' OR ipv4-addr:value = '192.0.2.1'] "
        "OR [url:value IN ('http://x.example/1', 'http://x.example/2')]"
    )
    assert reduce_pattern(tree) == [
        [("domain", "a.example")],
        [("ip", "192.0.2.1")],
        [("url", "http://x.example/1")],
        [("url", "http://x.example/2")],
    ]


def test_and_makes_a_conjunction_and_distributes_over_or() -> None:
    tree = parse_pattern(
        "[ipv4-addr:value = '192.0.2.1' AND (domain-name:value = 'a.example' "
        "OR domain-name:value = 'b.example')]"
    )
    assert reduce_pattern(tree) == [
        [("ip", "192.0.2.1"), ("domain", "a.example")],
        [("ip", "192.0.2.1"), ("domain", "b.example")],
    ]


def test_hash_names_and_quoted_path_components() -> None:
    tree = parse_pattern(
        "[file:hashes.'SHA-256' = 'aa' OR file:hashes.MD5 = 'bb' OR file:hashes.'SHA-1' = 'cc']"
    )
    assert [alt[0] for alt in reduce_pattern(tree)] == [
        ("sha256", "aa"),
        ("md5", "bb"),
        ("sha1", "cc"),
    ]


def test_escaped_quote_in_string_literal() -> None:
    tree = parse_pattern(r"[url:value = 'http://x.example/it\'s']")
    assert reduce_pattern(tree) == [[("url", "http://x.example/it's")]]


def test_issubset_on_addresses() -> None:
    tree = parse_pattern("[ipv6-addr:value ISSUBSET '2001:db8::/32']")
    assert reduce_pattern(tree) == [[("ip", "2001:db8::/32")]]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[file:name = 'x.exe']", "object path is not matched"),
        ("[domain-name:value != 'a.example']", "operator !="),
        ("[domain-name:value MATCHES '^a']", "operator MATCHES"),
        ("[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'a.example']", "AND spans"),
        ("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [url:value = 'x']", "FOLLOWEDBY"),
        ("[ipv4-addr:value = '1.2.3.4'] REPEATS 5 TIMES", "REPEATS"),
        ("[ipv4-addr:value = '1.2.3.4'] WITHIN 60 SECONDS", "WITHIN"),
        ("[file:hashes.'SSDEEP' = 'x']", "hash algorithm"),
        ("[domain-name:value NOT = 'a.example']", "NOT ="),
    ],
)
def test_unsupported_parts_say_why(pattern: str, reason: str) -> None:
    reduced = reduce_pattern(parse_pattern(pattern))
    problems = [p for alt in reduced for p in alt if isinstance(p, Unsupported)]
    assert problems, reduced
    assert reason in problems[0].reason


def test_start_stop_qualifier_parses() -> None:
    tree = parse_pattern(
        "[ipv4-addr:value = '1.2.3.4'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'"
    )
    assert isinstance(reduce_pattern(tree)[0][0], Unsupported)


def test_list_index_and_star_in_paths() -> None:
    tree = parse_pattern("[email-message:to_refs[*].value = 'a@b.example']")
    cmp = tree.expr
    assert isinstance(cmp, Comparison)
    assert cmp.path == ("to_refs", "*", "value")
    assert cmp.path_text == "email-message:to_refs[*].value"


@pytest.mark.parametrize(
    "pattern",
    [
        "[ipv4-addr:value = '1.2.3.4'",
        "ipv4-addr:value = '1.2.3.4'",
        "[ipv4-addr:value '1.2.3.4']",
        "[ipv4-addr:value = '1.2.3.4'] OR",
        "[ipv4-addr:value = '1.2.3.4' ] junk",
        "[ipv4-addr:value = '1.2.3.4 ]",
    ],
)
def test_syntax_errors_raise_pattern_error(pattern: str) -> None:
    with pytest.raises(PatternError):
        parse_pattern(pattern)


def test_pe_imphash_path() -> None:
    tree = parse_pattern("[file:extensions.'windows-pebinary-ext'.imphash = 'ab']")
    assert reduce_pattern(tree) == [[("imphash", "ab")]]
