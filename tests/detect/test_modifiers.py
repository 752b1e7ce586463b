"""Every value modifier of specification v2.1, with its edge cases, on inline rules."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

Fires = Callable[..., bool]  # the `fires` fixture of tests/detect/conftest.py


def one(field: str, value: str) -> str:
    """A detection with one selection testing one field (value is inserted as YAML)."""
    return f"selection:\n    {field}: {value}\ncondition: selection"


# -- plain values and wildcards ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field_value", "expected"),
    [
        (r"'C:\Windows\cmd.exe'", r"c:\windows\CMD.EXE", True),  # case-insensitive
        (r"'C:\Windows\cmd.exe'", r"C:\Windows\cmd.exe2", False),  # whole value
        (r"'*\cmd.exe'", r"C:\Windows\cmd.exe", True),
        (r"'cmd.ex?'", "cmd.exe", True),
        (r"'cmd.ex?'", "cmd.ex", False),  # ? is exactly one character
        (r"'cmd*exe'", "cmd\nx\nexe", True),  # * spans newlines
        (r"'foo\*bar'", "foo*bar", True),  # escaped wildcard is a literal
        (r"'foo\*bar'", "fooXbar", False),
        (r"'foo\?'", "foo?", True),
        (r"'foo\?'", "fooX", False),
        (r"'foo\\*'", r"foo\anything", True),  # escaped backslash, then a wildcard
        (r"'foo\\*'", "foobar", False),
        (r"'foo\\\*'", r"foo\*", True),  # both escaped: plain backslash and star
        (r"'foo\\\*'", r"foo\x", False),
        (r"'C:\Windows\'", "C:\\Windows\\", True),  # trailing backslash stays a backslash
        (r"'C:\\Windows'", r"C:\Windows", True),  # double backslash = one plain backslash
        (r"'a\\\\b'", r"a\\b", True),  # four backslashes: two plain ones
        ("''", "", True),  # empty value matches only the empty string
        ("''", "x", False),
    ],
)
def test_strings_and_wildcards(fires: Fires, value: str, field_value: str, expected: bool) -> None:
    assert fires(one("Image", value), {"Image": field_value}) is expected


def test_string_match_needs_the_field(fires: Fires) -> None:
    assert fires(one("Image", "'*'"), {"Image": ""}) is True
    assert fires(one("Image", "'*'"), {"Other": "x"}) is False
    assert fires(one("Image", "'*'"), {"Image": None}) is False


@pytest.mark.parametrize(
    ("value", "field_value", "expected"),
    [
        ("4688", 4688, True),
        ("4688", "4688", True),  # numbers match their string form
        ("4688", 4689, False),
        ("'4688'", 4688, True),
        ("1.5", 1.5, True),
        ("3", 3.0, True),  # an integral float renders as an integer
        ("true", True, True),
        ("true", "True", True),
        ("true", False, False),
        ("false", "false", True),
    ],
)
def test_numbers_and_booleans(fires: Fires, value: str, field_value: Any, expected: bool) -> None:
    assert fires(one("Value", value), {"Value": field_value}) is expected


def test_list_valued_field_matches_any_element(fires: Fires) -> None:
    assert fires(one("Tags", "'b*'"), {"Tags": ["a", "bc"]}) is True
    assert fires(one("Tags", "'b*'"), {"Tags": ["a", "c"]}) is False


def test_field_names_are_case_insensitive(fires: Fires) -> None:
    assert fires(one("commandline", "'x'"), {"CommandLine": "x"}) is True
    assert fires(one("CommandLine", "'x'"), {"commandline": "x"}) is True


# -- null, empty, missing, exists ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "null", "empty", "exists"),
    [
        ({}, True, False, False),  # missing
        ({"F": None}, True, False, True),  # null
        # empty: no value, as EVTX records one (an empty <Data>); null holds too (issue 15)
        ({"F": ""}, True, True, True),
        ({"F": "x"}, False, False, True),
    ],
)
def test_null_empty_missing_exists(
    fires: Fires, fields: dict[str, Any], null: bool, empty: bool, exists: bool
) -> None:
    assert fires(one("F", "null"), fields) is null
    assert fires(one("F", "''"), fields) is empty
    assert fires(one("F|exists", "true"), fields) is exists
    assert fires(one("F|exists", "false"), fields) is (not exists)


# -- contains / startswith / endswith / all ------------------------------------------------------


def test_contains_startswith_endswith(fires: Fires) -> None:
    fields = {"CommandLine": "powershell -NoP -Enc AAAA"}
    assert fires(one("CommandLine|contains", "' -enc '"), fields)
    assert not fires(one("CommandLine|contains", "'-encodedcommand'"), fields)
    assert fires(one("CommandLine|startswith", "'POWERSHELL'"), fields)
    assert not fires(one("CommandLine|startswith", "'-NoP'"), fields)
    assert fires(one("CommandLine|endswith", "'aaaa'"), fields)
    assert not fires(one("CommandLine|endswith", "'-enc'"), fields)
    # wildcards inside a contains value keep their meaning
    assert fires(one("CommandLine|contains", "'-N?P*AA'"), fields)


def test_all_links_values_with_and(fires: Fires) -> None:
    rule = "selection:\n    CommandLine|contains|all:\n        - '-enc'\n        - 'bypass'\n"
    rule += "condition: selection"
    assert fires(rule, {"CommandLine": "x -enc y -ep bypass"})
    assert not fires(rule, {"CommandLine": "x -enc y"})


def test_lists_or_and_maps_and(fires: Fires) -> None:
    rule = """
selection:
    EventID:
        - 1
        - 2
    Image|endswith: '.exe'
condition: selection
"""
    assert fires(rule, {"EventID": 2, "Image": "a.exe"})
    assert not fires(rule, {"EventID": 3, "Image": "a.exe"})
    assert not fires(rule, {"EventID": 1, "Image": "a.dll"})


def test_list_of_maps_is_or(fires: Fires) -> None:
    rule = """
selection:
    - Image|endswith: '\\example.exe'
    - Description|contains: 'Test executable'
condition: selection
"""
    assert fires(rule, {"Image": r"C:\x\example.exe"})
    assert fires(rule, {"Description": "a test executable here"})
    assert not fires(rule, {"Image": r"C:\x\other.exe", "Description": "nothing"})


# -- encodings ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_base64(fires: Fires) -> None:
    assert fires(one("Payload|base64", "'hello'"), {"Payload": "aGVsbG8="})
    assert not fires(one("Payload|base64", "'hello'"), {"Payload": "aGVsbG8"})
    assert fires(one("Payload|base64|contains", "'hello'"), {"Payload": "xx aGVsbG8= yy"})


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("tail", [b"", b"!", b"!!", b" and more"])
def test_base64offset_every_alignment(fires: Fires, offset: int, tail: bytes) -> None:
    encoded = b64(b"P" * offset + b"Invoke-Mimikatz" + tail)
    rule = one("CommandLine|base64offset|contains", "'Invoke-Mimikatz'")
    assert fires(rule, {"CommandLine": f"powershell -enc {encoded}"})
    # The first and last byte may share base64 characters with their neighbours, the middle
    # may not: a change there must not match.
    assert not fires(rule, {"CommandLine": b64(b"P" * offset + b"Invoke_Mimikatz" + tail)})


@pytest.mark.parametrize(
    ("modifier", "encoding", "prefix"),
    [
        ("wide", "utf-16-le", b""),
        ("utf16le", "utf-16-le", b""),
        ("utf16be", "utf-16-be", b""),
        ("utf16", "utf-16-le", b"\xff\xfe"),
    ],
)
def test_utf16_encodings_with_base64(
    fires: Fires, modifier: str, encoding: str, prefix: bytes
) -> None:
    rule = one(f"CommandLine|{modifier}|base64", "'ping'")
    assert fires(rule, {"CommandLine": b64(prefix + "ping".encode(encoding))})
    assert not fires(rule, {"CommandLine": b64(b"ping")})


def test_wide_base64offset_contains(fires: Fires) -> None:
    rule = one("CommandLine|wide|base64offset|contains", "'IEX ('")
    for pad in range(3):
        data = ("a" * pad + "x; IEX (New-Object)").encode("utf-16-le")
        assert fires(rule, {"CommandLine": "-enc " + b64(data)})
        # the same text as UTF-8 (not wide), and wide text without the value, do not fire
        narrow = ("a" * pad + "x; IEX (New-Object)").encode()
        assert not fires(rule, {"CommandLine": "-enc " + b64(narrow)})
        other = ("a" * pad + "x; Get-Item (New-Object)").encode("utf-16-le")
        assert not fires(rule, {"CommandLine": "-enc " + b64(other)})


# -- windash -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dash", ["-", "/", "\u2013", "\u2014", "\u2015"])
def test_windash_all_five_dashes(fires: Fires, dash: str) -> None:
    rule = one("CommandLine|windash|contains", "' -exec bypass'")
    assert fires(rule, {"CommandLine": f"powershell {dash}exec bypass"})
    assert not fires(rule, {"CommandLine": "powershell +exec bypass"})


def test_windash_with_wildcards(fires: Fires) -> None:
    rule = one("CommandLine|windash", "'* -s *'")
    assert fires(rule, {"CommandLine": "psexec /s cmd"})
    assert fires(rule, {"CommandLine": "psexec \u2015s cmd"})
    assert not fires(rule, {"CommandLine": "psexec s cmd"})


def test_windash_under_all_stays_or_inside_each_value(fires: Fires) -> None:
    rule = "selection:\n    CommandLine|windash|contains|all:\n        - ' -a'\n        - ' -b'\n"
    rule += "condition: selection"
    assert fires(rule, {"CommandLine": "x /a \u2013b"})
    assert not fires(rule, {"CommandLine": "x /a"})


# -- regular expressions -------------------------------------------------------------------------


def test_re_is_case_sensitive_unless_i(fires: Fires) -> None:
    assert fires(one("CommandLine|re", "'a.c'"), {"CommandLine": "xxabcxx"})
    assert not fires(one("CommandLine|re", "'a.c'"), {"CommandLine": "ABC"})
    assert fires(one("CommandLine|re|i", "'a.c'"), {"CommandLine": "ABC"})


def test_re_multiline_and_dotall(fires: Fires) -> None:
    text = "first\nfoo\nlast"
    assert not fires(one("Data|re", "'^foo$'"), {"Data": text})
    assert fires(one("Data|re|m", "'^foo$'"), {"Data": text})
    assert not fires(one("Data|re", "'first.foo'"), {"Data": text})
    assert fires(one("Data|re|s", "'first.foo'"), {"Data": text})


def test_re_keeps_backslashes_and_wildcard_characters(fires: Fires) -> None:
    assert fires(one("Data|re", r"'\\temp\\.*\.exe$'"), {"Data": r"C:\temp\x.exe"})
    assert not fires(one("Data|re", r"'\\temp\\.*\.exe$'"), {"Data": r"C:\temp\x.exe2"})


# -- cidr ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "address", "expected"),
    [
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("192.168.1.0/24", "192.168.1.255", True),
        ("2001:db8::/32", "2001:db8::1", True),
        ("2001:db8::/32", "2001:DB8:0:0:0:0:0:FFFF", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("fe80::/10", "fe80::1%eth0", True),
        ("10.0.0.0/8", "::ffff:10.0.0.1", True),
        ("10.0.0.0/8", "not an address", False),
        ("10.0.0.0/8", "", False),
    ],
)
def test_cidr(fires: Fires, network: str, address: str, expected: bool) -> None:
    assert fires(one("DestinationIp|cidr", f"'{network}'"), {"DestinationIp": address}) is expected


def test_cidr_list_is_or(fires: Fires) -> None:
    rule = "selection:\n    Ip|cidr:\n        - '10.0.0.0/8'\n        - '::1/128'\n"
    rule += "condition: selection"
    assert fires(rule, {"Ip": "::1"})
    assert not fires(rule, {"Ip": "127.0.0.1"})


# -- cased, neq, numeric comparisons, fieldref ---------------------------------------------------


def test_cased(fires: Fires) -> None:
    assert fires(one("Image|cased", "'CMD.exe'"), {"Image": "CMD.exe"})
    assert not fires(one("Image|cased", "'CMD.exe'"), {"Image": "cmd.exe"})
    assert fires(one("Image|endswith|cased", "'\\CMD.exe'"), {"Image": "C:\\CMD.exe"})
    assert not fires(one("Image|endswith|cased", "'\\CMD.exe'"), {"Image": "C:\\cmd.exe"})


def test_neq(fires: Fires) -> None:
    assert fires(one("User|neq", "'SYSTEM'"), {"User": "admin"})
    assert not fires(one("User|neq", "'SYSTEM'"), {"User": "system"})
    assert not fires(one("User|neq", "'SYSTEM'"), {})  # no value is not a different value
    assert fires(one("Port|neq", "443"), {"Port": 80})
    assert not fires(one("Port|neq", "443"), {"Port": "443"})
    multi = "selection:\n    User|neq:\n        - a\n        - b\ncondition: selection"
    assert fires(multi, {"User": "c"})
    assert not fires(multi, {"User": "b"})


@pytest.mark.parametrize(
    ("modifier", "value", "expected"),
    [
        ("lt", 10, False),
        ("lt", 9, True),
        ("lte", 10, True),
        ("gt", 10, False),
        ("gt", 11, True),
        ("gte", 10, True),
        ("gte", "10", True),  # numeric strings compare as numbers
        ("gte", "9.5", False),
        ("gt", "abc", False),
        ("gt", True, False),  # a boolean is not a number
    ],
)
def test_numeric_comparisons(fires: Fires, modifier: str, value: Any, expected: bool) -> None:
    assert fires(one(f"Count|{modifier}", "10"), {"Count": value}) is expected


def test_fieldref(fires: Fires) -> None:
    rule = one("TargetUserName|fieldref", "SubjectUserName")
    assert fires(rule, {"TargetUserName": "Bob", "SubjectUserName": "bob"})
    assert not fires(rule, {"TargetUserName": "Bob", "SubjectUserName": "alice"})
    assert not fires(rule, {"TargetUserName": "Bob"})
    assert fires(one("Cmd|fieldref|contains", "Name"), {"Cmd": "run evil.exe now", "Name": "evil"})
    assert fires(one("Cmd|fieldref|startswith", "Name"), {"Cmd": "evil.exe now", "Name": "evil"})
    assert fires(one("Cmd|fieldref|endswith", "Name"), {"Cmd": "run evil", "Name": "EVIL"})
    assert not fires(one("Cmd|fieldref|endswith", "Name"), {"Cmd": "evil run", "Name": "evil"})
    neq = one("TargetUserName|fieldref|neq", "SubjectUserName")
    assert fires(neq, {"TargetUserName": "bob", "SubjectUserName": "alice"})
    assert not fires(neq, {"TargetUserName": "bob", "SubjectUserName": "bob"})


# -- time parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modifier", "number", "expected"),
    [
        ("minute", 7, True),
        ("hour", 23, True),
        ("hour", 22, False),
        ("day", 31, True),
        ("week", 53, True),  # ISO week of 2026-12-31
        ("month", 12, True),
        ("year", 2026, True),
        ("year", 2025, False),
    ],
)
def test_time_parts(fires: Fires, modifier: str, number: int, expected: bool) -> None:
    for value in (
        "2026-12-31T23:07:59Z",
        "2026-12-31 23:07:59.123456",
        datetime(2026, 12, 31, 23, 7, 59, tzinfo=UTC),
    ):
        rule = one(f"UtcTime|{modifier}", str(number))
        assert fires(rule, {"UtcTime": value}) is expected
    assert not fires(one(f"UtcTime|{modifier}", str(number)), {"UtcTime": "not a time"})


# -- expand and placeholders ---------------------------------------------------------------------


def test_expand_with_placeholder_values(fires: Fires) -> None:
    rule = one("User|expand", "'%Administrators%'")
    values = {"Administrators": ["admin*", "root"]}
    assert fires(rule, {"User": "Administrator"}, placeholders=values)
    assert fires(rule, {"User": "ROOT"}, placeholders=values)
    assert not fires(rule, {"User": "bob"}, placeholders=values)


def test_expand_inside_a_longer_value(fires: Fires) -> None:
    rule = one("Path|expand|endswith", r"'\%Folder%\x.exe'")
    values = {"Folder": ["temp", "tmp"]}
    assert fires(rule, {"Path": r"C:\TMP\x.exe"}, placeholders=values)
    assert not fires(rule, {"Path": r"C:\other\x.exe"}, placeholders=values)


def test_placeholder_without_expand_is_a_literal(fires: Fires) -> None:
    rule = one("User", "'%Administrators%'")
    assert fires(rule, {"User": "%administrators%"})
    # even with a value for the placeholder, it is not substituted without `expand`
    values = {"Administrators": ["root"]}
    assert fires(rule, {"User": "%Administrators%"}, placeholders=values)
    assert not fires(rule, {"User": "root"}, placeholders=values)


def test_placeholder_without_value_rejects_the_rule(load_error: Any) -> None:
    reason = load_error(one("User|expand", "'%Administrators%'"))
    assert "%Administrators%" in reason
    assert "no value" in reason


# -- values the specification forbids are load errors, with a reason ----------------------------


@pytest.mark.parametrize(
    ("detection", "reason"),
    [
        (one("Image|nosuch", "'x'"), "nosuch"),
        (one("Data|re", "'(unclosed'"), "invalid"),
        (one("Ip|cidr", "'10.0.0.0/33'"), "CIDR"),
        (one("Data|base64", "'foo*'"), "wildcards"),
        (one("Data|base64offset", "'foo?'"), "wildcards"),
        (one("Other|fieldref", "'Name*'"), "wildcards"),
        (one("Count|gt", "'ten'"), "ncompatible"),
        (one("Data|windash", "'-a -b -c -d'"), "three"),
        (one("Data|contains|re", "'x'"), "unmodified"),
        ("keywords:\n    - 'a'\ncondition: keywords and missing", "missing"),
    ],
)
def test_forbidden_values_are_load_errors(
    load_error: Callable[..., str], detection: str, reason: str
) -> None:
    assert reason in load_error(detection)


def test_windash_with_three_dashes_loads(fires: Fires) -> None:
    rule = one("CommandLine|windash|contains", "' -a -b -c'")
    assert fires(rule, {"CommandLine": "x /a \u2014b -c"})


def test_keys_equal_but_for_case_use_the_exact_spelling(fires: Fires) -> None:
    fields = {"image": r"C:\a.exe", "Image": r"C:\b.exe"}
    assert fires(one("Image|endswith", r"'\b.exe'"), fields)
    assert not fires(one("Image|endswith", r"'\a.exe'"), fields)
    assert fires(one("image|endswith", r"'\a.exe'"), fields)
    assert fires(one("IMAGE|endswith", r"'\a.exe'"), fields)  # no exact key: the first one


def test_keywords_see_every_key_even_when_keys_clash_in_case(fires: Fires) -> None:
    rule = "keywords:\n    - 'needle'\ncondition: keywords"
    assert fires(rule, {"ProcessId": "1", "ProcessID": "the needle"})
    assert fires(one("ProcessID", "'the needle'"), {"ProcessId": "1", "ProcessID": "the needle"})
    assert not fires(
        one("ProcessId", "'the needle'"), {"ProcessId": "1", "ProcessID": "the needle"}
    )


def test_expand_inside_a_regular_expression(fires: Fires) -> None:
    rule = one("Host|re|expand", r"'^%Prefix%-\d+$'")
    values = {"Prefix": ["srv", "d.b"]}  # values are literal text inside the regex
    assert fires(rule, {"Host": "srv-12"}, placeholders=values)
    assert fires(rule, {"Host": "d.b-7"}, placeholders=values)
    assert not fires(rule, {"Host": "dxb-7"}, placeholders=values)
    assert not fires(rule, {"Host": "web-1"}, placeholders=values)
