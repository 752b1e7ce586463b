"""``|re`` over non-ASCII values: RE2, in linear time, with Python's ``re.search`` meaning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vedette.detect import Engine
from vedette.detect.plan import Regex
from vedette.detect.unicode_regex import unicode_search
from vedette.events import Event, LogSource

PATTERNS = [
    r"(a+)+$",
    r"^\d+\s\w+$",
    r"\W\S\D",
    r"caf[eé]",
    r"[^a-z]+x",
    r"(?i)straße|KELVIN",
    r"(?i)ǅ|ǆ",
    r"foo.bar",
    r"(?s)foo.bar",
    r"^a$",
    r"(?m)^b$",
    r"x{2,3}?y",
    r"\Aé\Z",
    r"[\d\s]+é",
    r"(?i:É)t[é-ë]",
    r"a|b|ü",
    r"\u00e9+",
    r"[\w.-]+@[\w-]+\.\w+",
]
ALPHABET = "aAbBxyz09 é É ß ẞ ǅ ǆ ſ K \u212a ٣ \u00a0\u2003\n\t._-@"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterns_are_taken_by_re2(pattern: str) -> None:
    assert unicode_search(Regex(pattern, "")) is not None


@pytest.mark.parametrize("pattern", [r"(?=a)b", r"(a)\1", r"\bword", r"(?a)\w", r"(?>a+)b"])
def test_what_re2_cannot_say_stays_with_python(pattern: str) -> None:
    assert unicode_search(Regex(pattern, "")) is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATTERNS), st.sampled_from(["", "i", "s", "m", "is"]), st.text(ALPHABET))
def test_same_truth_as_python_re(pattern: str, flags: str, text: str) -> None:
    python_flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)):
        if letter in flags:
            python_flags |= flag
    search = unicode_search(Regex(pattern, flags))
    assert search is not None
    expected = re.search(pattern, text, python_flags) is not None
    assert (search(text) is not None) == expected, (pattern, flags, text)


RULE = """
title: Backtracking
id: 0e7b3c5a-1b2c-4d5e-8f90-123456789ac0
logsource: {product: windows, category: process_creation}
detection:
    selection: {CommandLine|re: '(a+)+$'}
    condition: selection
"""


@pytest.mark.parametrize("scanner", ["none", "python", "hyperscan"])
def test_catastrophic_pattern_on_non_ascii_value_returns(tmp_path: Path, scanner: str) -> None:
    """Python's re takes minutes here ((a+)+$ over 40 a's and a non-ASCII character)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bt.yml").write_text(RULE)
    engine = Engine.from_paths([rules], scanner=scanner)
    process = LogSource("windows", frozenset({"sysmon"}), frozenset({"process_creation"}))
    events = [
        Event({"CommandLine": "é" + "a" * 40 + "é"}, logsource=process),
        Event({"CommandLine": "é" + "a" * 40}, logsource=process),
    ]
    fired = [d.event for d in engine.match(events)]
    assert fired == [events[1]]
