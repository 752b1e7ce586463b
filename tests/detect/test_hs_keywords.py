"""The keyword prefilter: the literal each keyword glob needs, and when it cannot vouch."""

from __future__ import annotations

import sys

import pytest

from vedette.detect.hs_keywords import KeywordPrefilter, PieceDatabase, necessary_token
from vedette.detect.hs_layouts import make_layout
from vedette.detect.plan import ANY, ONE, DetectionItem, Glob


@pytest.mark.parametrize(
    ("tokens", "cased", "expected"),
    [
        ((ANY, "Mimikatz", ANY), False, "mimikatz"),
        ((ANY, "Mimikatz", ANY), True, "Mimikatz"),
        ((ANY, "ab", ANY, "longer", ANY), False, "longer"),
        ((ANY, "123", ANY), False, None),  # digits: a float renders differently in JSON
        ((ANY, "1e-05", ANY), False, None),
        ((ANY, "true", ANY), False, None),  # a bool left out of the scan renders "true"
        ((ANY, "aaa", ANY), False, "aaa"),  # letters of "nan", but no part of it
        ((ANY, "an", ANY), False, None),
        ((ANY, "inf", ANY), False, None),
        ((ANY, "e+1", ANY), False, None),
        ((ANY, "ru", ANY), False, None),
        ((ANY, " 123 ", ANY), False, " 123 "),
        ((ANY, "Großé", ANY), False, "gro"),  # the longest ASCII piece
        ((ANY,), False, None),
        ((ONE, ONE), False, None),
    ],
)
def test_necessary_token(tokens: tuple[object, ...], cased: bool, expected: str | None) -> None:
    assert necessary_token(Glob(tokens, case_sensitive=cased)) == expected  # type: ignore[arg-type]


def test_only_two_characters_lower_case_into_ascii() -> None:
    # The prefilter refuses to vouch for events holding these two; if a Python release adds
    # another such character, this must fail rather than the prefilter miss a keyword.
    odd = [
        chr(c)
        for c in range(0x80, sys.maxunicode + 1)
        if any(ch.isascii() for ch in chr(c).lower()) or len(chr(c).lower()) != 1
    ]
    assert odd == ["\u0130", "\u212a"]


def prefilter(*globs: Glob) -> PieceDatabase:
    database = KeywordPrefilter([DetectionItem(0, None, globs)]).database_for(frozenset({0}))
    assert database is not None
    return database


def may(pf: PieceDatabase, fields: dict[str, object]) -> bool:
    layout = make_layout(fields, lambda key: 0)  # type: ignore[arg-type]
    return pf.may_match(fields, layout)  # type: ignore[arg-type]


def test_prefilter_answers() -> None:
    pf = prefilter(Glob((ANY, "mimikatz", ANY)))
    assert not may(pf, {"a": "x", "b": 4, "c": True, "d": None, "e": 2.5})
    assert may(pf, {"a": "run MIMIKATZ now"})
    assert not may(pf, {"a": ["list", "values"], "b": [1, 2]})  # lists: element by element
    assert may(pf, {"a": ["list", "with MimiKatz"]})
    assert may(pf, {"a": ["mixed", 1]})  # not vouched for: decided exactly
    assert may(pf, {"a": [["nested"]]})
    assert may(pf, {"a": "\u212a"})  # lower-cases to ASCII: decided exactly
    assert not may(pf, {"a": "é non-ASCII but harmless"})
    layout = make_layout({"a": "x"}, lambda key: 0)
    assert pf.may_match({"a": 5}, layout)  # a text key holds a number: decided exactly


def test_items_without_a_usable_piece_are_listed() -> None:
    pf = KeywordPrefilter(
        [
            DetectionItem(0, None, (Glob((ANY, "mimikatz", ANY)),)),
            DetectionItem(1, None, (Glob((ANY, "200", ANY)),)),
        ]
    )
    assert pf.unusable == {1}
    database = pf.database_for(frozenset({0, 1}))
    assert database is not None
    assert not may(database, {"a": "x 200 y"})  # item 1 is the scanner's to decide exactly
    assert may(database, {"a": "mimikatz"})
    assert pf.database_for(frozenset({1})) is None


def test_each_set_of_items_has_its_own_pieces() -> None:
    # A Windows event must not be held up by the short pieces of Linux keyword rules.
    pf = KeywordPrefilter(
        [
            DetectionItem(0, None, (Glob((ANY, "mimikatz", ANY)),)),
            DetectionItem(1, None, (Glob((ANY, "-s", ANY)),)),
        ]
    )
    windows, linux = pf.database_for(frozenset({0})), pf.database_for(frozenset({1}))
    assert windows is not None and linux is not None
    assert not may(windows, {"CommandLine": "net user -s"})
    assert may(linux, {"CommandLine": "net user -s"})
