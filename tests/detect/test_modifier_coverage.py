"""Every value modifier pySigma knows is implemented: a rule using it loads and decides right.

README and docs/sigma-semantics.md claim every Sigma v2.1 value modifier is implemented. This
table must name each modifier in pySigma's registry (plus the specification names Vedette adds,
``utf16le``), so a modifier added upstream (or one the
engine loses) fails here instead of being claimed unseen. The detailed semantics of each are in
``test_modifiers.py``; this is the completeness check.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sigma.modifiers import modifier_mapping

from vedette.detect import sigma_compat

Fires = Callable[..., bool]  # the `fires` fixture of tests/detect/conftest.py

# the engine registers the specification names pySigma lacks (utf16le) when it loads rules
sigma_compat.install()

T = "2026-12-31T23:07:59Z"
_WEEK = date(2026, 12, 31).isocalendar().week


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# modifier -> (field|modifiers, value as YAML, fields that must fire, fields that must not)
CASES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "all": ("F|contains|all", "['ab', 'cd']", {"F": "ab cd"}, {"F": "ab"}),
    "base64": ("F|base64", "'abc'", {"F": "YWJj"}, {"F": "abc"}),
    "base64offset": ("F|base64offset|contains", "'abc'", {"F": "xYWJjx"}, {"F": "abc"}),
    "cased": ("F|cased", "'AbC'", {"F": "AbC"}, {"F": "abc"}),
    "cidr": ("F|cidr", "'10.0.0.0/8'", {"F": "10.1.2.3"}, {"F": "11.1.2.3"}),
    "contains": ("F|contains", "'bc'", {"F": "abcd"}, {"F": "acbd"}),
    "day": ("T|day", "31", {"T": T}, {"T": "2026-12-30T23:07:59Z"}),
    "dotall": ("F|re|dotall", "'a.b'", {"F": "a\nb"}, {"F": "a\nc"}),
    "endswith": ("F|endswith", "'cd'", {"F": "abcd"}, {"F": "cdab"}),
    "exists": ("F|exists", "true", {"F": "x"}, {"G": "x"}),
    "expand": ("F|expand", "'%P%'", {"F": "root"}, {"F": "bob"}),
    "fieldref": ("F|fieldref", "G", {"F": "x", "G": "x"}, {"F": "x", "G": "y"}),
    "gt": ("F|gt", "5", {"F": 6}, {"F": 5}),
    "gte": ("F|gte", "5", {"F": 5}, {"F": 4}),
    "hour": ("T|hour", "23", {"T": T}, {"T": "2026-12-31T22:07:59Z"}),
    "i": ("F|re|i", "'abc'", {"F": "ABC"}, {"F": "abd"}),
    "ignorecase": ("F|re|ignorecase", "'abc'", {"F": "ABC"}, {"F": "abd"}),
    "lt": ("F|lt", "5", {"F": 4}, {"F": 5}),
    "lte": ("F|lte", "5", {"F": 5}, {"F": 6}),
    "m": ("F|re|m", "'^b$'", {"F": "a\nb\nc"}, {"F": "ab"}),
    "minute": ("T|minute", "7", {"T": T}, {"T": "2026-12-31T23:08:59Z"}),
    "month": ("T|month", "12", {"T": T}, {"T": "2026-11-30T23:07:59Z"}),
    "multiline": ("F|re|multiline", "'^b$'", {"F": "a\nb\nc"}, {"F": "ab"}),
    "neq": ("F|neq", "'x'", {"F": "y"}, {"F": "x"}),
    "re": ("F|re", "'^a.c$'", {"F": "abc"}, {"F": "abcd"}),
    "s": ("F|re|s", "'a.b'", {"F": "a\nb"}, {"F": "a\nc"}),
    "startswith": ("F|startswith", "'ab'", {"F": "abcd"}, {"F": "cdab"}),
    "utf16": ("F|utf16|base64", "'ab'", {"F": _b64(b"\xff\xfea\x00b\x00")}, {"F": "YWI="}),
    "utf16be": ("F|utf16be|base64", "'ab'", {"F": _b64(b"\x00a\x00b")}, {"F": "YWI="}),
    "utf16le": ("F|utf16le|base64", "'ab'", {"F": _b64(b"a\x00b\x00")}, {"F": "YWI="}),
    "week": ("T|week", str(_WEEK), {"T": T}, {"T": "2026-12-20T23:07:59Z"}),
    "wide": ("F|wide|base64", "'ab'", {"F": _b64(b"a\x00b\x00")}, {"F": "YWI="}),
    "windash": ("F|windash|contains", "' -enc '", {"F": "x /enc y"}, {"F": "x enc y"}),
    "year": ("T|year", "2026", {"T": T}, {"T": "2025-12-31T23:07:59Z"}),
}


def test_every_pysigma_modifier_has_a_case() -> None:
    assert sorted(CASES) == sorted(modifier_mapping)


@pytest.mark.parametrize("modifier", sorted(CASES))
def test_modifier_loads_and_decides(fires: Fires, modifier: str) -> None:
    key, value, hit, miss = CASES[modifier]
    rule = f"selection:\n    {key}: {value}\ncondition: selection\n"
    options: dict[str, Any] = {"placeholders": {"P": ["root"]}} if modifier == "expand" else {}
    assert fires(rule, hit, **options), f"{modifier}: {hit} should fire"
    assert not fires(rule, miss, **options), f"{modifier}: {miss} should not fire"
