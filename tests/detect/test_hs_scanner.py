"""The Hyperscan item scanner against the items' own Python closures (the reference).

Property tests throw tricky globs and values at both (wildcards at the ends, ``?`` before
multi-byte characters, case folds that change length, the buffer's own separator bytes inside
values, lone surrogates, very long values); every covered item must get the same answer.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vedette.detect import hs_scanner  # a required dependency: a broken import must fail
from vedette.detect.matchers import EventView, item_test
from vedette.detect.plan import ANY, ONE, AnyOf, DetectionItem, Glob, GlobToken, Regex, RulePlan
from vedette.events import Event

HyperscanScanner = hs_scanner.HyperscanScanner

# Characters chosen to break naive scanners: case folds that change length (İ, ß has none but
# casefold would), the Kelvin sign (lower-cases to ASCII k), final sigma, the separator bytes
# and their look-alikes, newline, a lone surrogate, and 4-byte UTF-8.
TRICKY = "aAkKzZ09 .\\*?=\x00\x01\xff\xfeÿİıΣσςßẞK\n\ud800😀é"
texts = st.text(alphabet=TRICKY, max_size=8)
tokens = st.one_of(texts, st.just(ANY), st.just(ONE))
globs = st.builds(
    lambda toks, cased: Glob(tuple(toks), case_sensitive=cased),
    st.lists(tokens, max_size=6),
    st.booleans(),
)
values: st.SearchStrategy[Any] = st.one_of(
    texts,
    st.text(alphabet=TRICKY, min_size=200, max_size=400),
    st.integers(-5, 5000),
    st.booleans(),
    st.none(),
    st.lists(texts, max_size=3),
)
FIELDS = ("Image", "image", "CommandLine", "Other")


def reference(
    items: list[DetectionItem], fields: dict[str, Any], covered: frozenset[int]
) -> set[int]:
    view = EventView(fields)
    return {item.item_id for item in items if item.item_id in covered and item_test(item)(view)}


def make_items(specs: list[tuple[str | None, list[Glob], bool]]) -> list[DetectionItem]:
    return [
        DetectionItem(i, field, tuple(matchers), match_all)
        for i, (field, matchers, match_all) in enumerate(specs)
    ]


def decide(items: list[DetectionItem], fields: dict[str, Any]) -> tuple[set[int], frozenset[int]]:
    scanner = HyperscanScanner(RulePlan(items=items), None)
    return scanner.decide([Event(fields)])[0], scanner.covered


item_specs = st.lists(
    st.tuples(
        st.sampled_from((*FIELDS, None)),
        st.lists(globs, min_size=1, max_size=3),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)
events = st.dictionaries(st.sampled_from(FIELDS), values, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item_specs, events)
def test_property_scanner_equals_python(
    specs: list[tuple[str | None, list[Glob], bool]], fields: dict[str, Any]
) -> None:
    items = make_items(specs)
    got, covered = decide(items, fields)
    assert covered == {item.item_id for item in items}
    assert got == reference(items, fields, covered)


@pytest.mark.parametrize(
    ("tokens", "value", "expected"),
    [
        (("cmd.exe",), "CMD.EXE", True),
        (("cmd.exe",), "xcmd.exe", False),
        ((ANY, "\\cmd.exe"), "C:\\Windows\\cmd.exe", True),
        ((ANY, "\\cmd.exe"), "C:\\Windows\\cmd.exe ", False),
        (("C:\\", ANY), "c:\\x", True),
        ((ANY, "whoami", ANY), "a WHOAMI b", True),
        ((ONE, "b"), "éb", True),
        ((ONE, "b"), "😀b", True),
        ((ONE, "b"), "ab b", False),
        ((ONE, ONE), "é", False),
        ((), "", True),
        ((), "x", False),
        ((ANY,), "", True),
        ((ONE, ANY), "", False),  # must not reach the padding byte after the value
        ((ANY, ONE, ANY), "", False),
        ((ANY, ONE, ANY), "é", True),
        ((ONE, ANY), "x", True),
        (("\0", ANY), "", False),
        (("\0", ANY), "\0x", True),
        (("a*b",), "A*B", True),
        (("a*b",), "axb", False),
        (("İ",), "i̇", True),  # "İ".lower() is two characters
        (("k",), "\u212a", True),  # Kelvin sign lower-cases to ASCII k
        (("σ",), "Σ", True),
        ((ANY, "ς"), "ΑΣ", True),  # final sigma: lower() is context-sensitive
    ],
)
def test_glob_cases(tokens: tuple[GlobToken, ...], value: str, expected: bool) -> None:
    items = make_items([("CommandLine", [Glob(tokens)], False)])
    got, covered = decide(items, {"CommandLine": value})
    assert reference(items, {"CommandLine": value}, covered) == ({0} if expected else set())
    assert got == ({0} if expected else set())


def test_separator_bytes_inside_values() -> None:
    items = make_items([("A", [Glob((ANY, "x", ANY))], False), ("B", [Glob(("y",))], False)])
    fields = {"A": "\x00\xff", "B": "y\x00"}
    got, _ = decide(items, fields)
    assert got == set()
    got, _ = decide(items, {"A": "q\x00x\xffq", "B": "y"})
    assert got == {0, 1}


def test_value_cannot_spill_into_next_field() -> None:
    # "*a" on A must not match across the delimiter into B's value.
    items = make_items([("A", [Glob((ANY, "a"))], False), ("A", [Glob(("b", ANY))], False)])
    got, _ = decide(items, {"A": "b", "B": "a"})
    assert got == {1}


def test_field_names_ignore_case_and_exact_key_wins() -> None:
    items = make_items([("Image", [Glob(("x",))], False), ("IMAGE", [Glob(("y",))], False)])
    fields = {"image": "y", "Image": "x"}
    got, covered = decide(items, fields)
    assert got == reference(items, fields, covered) == {0, 1}


def test_keyword_and_all_modifier() -> None:
    items = make_items(
        [
            (None, [Glob((ANY, "evil", ANY))], False),
            ("CommandLine", [Glob((ANY, "a", ANY)), Glob((ANY, "b", ANY))], True),
        ]
    )
    got, _ = decide(items, {"X": 1, "Y": "some EVIL thing", "CommandLine": "a"})
    assert got == {0}
    got, _ = decide(items, {"CommandLine": ["a", "zzb"]})
    assert got == reference(items, {"CommandLine": ["a", "zzb"]}, frozenset({0, 1}))


def test_anyof_alternatives_are_covered() -> None:
    matcher = AnyOf((Glob((ANY, "-enc", ANY)), Glob((ANY, "/enc", ANY))))
    items = make_items([("CommandLine", [matcher], False)])  # type: ignore[list-item]
    got, covered = decide(items, {"CommandLine": "powershell /ENC abc"})
    assert covered == {0}
    assert got == {0}


def test_regex_item_left_to_python_when_untranslatable() -> None:
    items = [DetectionItem(0, "CommandLine", (Regex(r"(?<=a)b"),))]
    scanner = HyperscanScanner(RulePlan(items=items), None)
    assert 0 not in scanner.covered


def test_pickles_without_recompiling(tmp_path: Path) -> None:
    items = make_items([("CommandLine", [Glob((ANY, "whoami", ANY))], False)])
    scanner = HyperscanScanner(RulePlan(items=items), tmp_path)
    assert list(tmp_path.glob("hyperscan-*.bin")), "database not cached"
    clone = pickle.loads(pickle.dumps(scanner))
    assert clone.decide([Event({"CommandLine": "WHOAMI /all"})]) == [{0}]
    warm = HyperscanScanner(RulePlan(items=items), tmp_path)
    assert warm.decide([Event({"CommandLine": "x"})]) == [set()]


def test_repeated_values_answer_alike_across_events() -> None:
    # The scanner remembers each field value's true patterns; a remembered answer must equal a
    # fresh one, whatever else the event holds.
    items = make_items(
        [
            ("Image", [Glob((ANY, "\\cmd.exe"))], False),
            ("Image", [Glob(("c:\\windows\\system32\\cmd.exe",))], False),
            ("CommandLine", [Glob((ANY, "/c", ANY)), Glob((ANY, "whoami", ANY))], True),
        ]
    )
    scanner = HyperscanScanner(RulePlan(items=items), None)
    batch = [
        Event({"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c whoami"}),
        Event({"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c dir"}),
        Event({"Image": "C:\\Windows\\System32\\CMD.exe"}),
        Event({"CommandLine": "cmd /c whoami", "Image": "x"}),
    ]
    assert scanner.decide(batch) == [{0, 1, 2}, {0, 1}, {0, 1}, {2}]
    assert scanner.decide(batch) == [{0, 1, 2}, {0, 1}, {0, 1}, {2}]


# -- regular expressions -----------------------------------------------------------------------

REGEX_ATOMS = [
    "a", "B", "k", "s", "\\.", "\\\\", ".", "\\d", "\\D", "\\s", "\\S", "\\w", "\\W",
    "[a-c]", "[^a]", "[0-9A-F]", "[\\s,]", "é", "\\b", "x\\B",
]  # fmt: skip
REGEX_VALUES = "aAbBcCkKsS019 ,.\\\n\t\x1cé\u212a\u017fİ٣\xa0_-"
regex_patterns = st.builds(
    lambda anchor_start, parts, quant, alt, anchor_end: (
        ("^" if anchor_start else "")
        + "".join(p + q for p, q in zip(parts, quant, strict=False))
        + ("|" + alt if alt else "")
        + ("$" if anchor_end else "")
    ),
    st.booleans(),
    st.lists(st.sampled_from(REGEX_ATOMS), min_size=1, max_size=4),
    st.lists(st.sampled_from(["", "", "*", "+", "?", "{1,2}", "+?"]), max_size=4),
    st.one_of(st.just(""), st.sampled_from(REGEX_ATOMS)),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(regex_patterns, st.sampled_from(["", "i", "s", "is"])), min_size=1, max_size=4
    ),
    st.lists(st.text(alphabet=REGEX_VALUES, max_size=10), min_size=1, max_size=3),
)
def test_property_regex_equals_python(patterns: list[tuple[str, str]], texts: list[str]) -> None:
    items = [
        DetectionItem(i, "CommandLine", (Regex(p, f), Glob(("never-ever",))))
        for i, (p, f) in enumerate(patterns)
    ]
    for value in (*texts, texts):
        fields = {"CommandLine": value}
        got, covered = decide(items, fields)
        assert got == reference(items, fields, covered), (patterns, value)


def test_regex_items_are_covered_when_exact() -> None:
    items = [
        DetectionItem(0, "CommandLine", (Regex(r"\$env:ComSpec\[(\s*\d{1,3}\s*,){2}"),)),
        DetectionItem(1, "Image", (Regex(r"^[Cc]:\\.{1,9}\.exe$"),)),
        DetectionItem(2, "Image", (Regex(r"(?<=a)b"),)),  # lookbehind: Python decides
        DetectionItem(3, "Image", (Regex(r"^C:\\Users\\[^\\]+\\NTUSER\.DAT$", "i"),)),
    ]
    scanner = HyperscanScanner(RulePlan(items=items), None)
    assert scanner.covered == {0, 1, 3}
    batch = [
        Event({"CommandLine": "x $env:ComSpec[4, 24, 25] y", "Image": "c:\\abc.exe"}),
        Event({"CommandLine": "$env:ComSpec[٣, 2,]", "Image": "c:\\users\\bob\\ntuser.dat"}),
        Event({"Image": "C:\\Users\\b\u212a\\NTUSER.DAT"}),  # Kelvin sign: Python decides
    ]
    assert scanner.decide(batch) == [{0, 1}, {0, 3}, {3}]


def test_regex_hyperscan_rejects_is_left_to_python(tmp_path: Path) -> None:
    # Python accepts this bounded repeat, Hyperscan will not compile it: the scanner must notice
    # on a cold start (no cached bundle) and leave that item alone, deciding the others.
    items = [
        DetectionItem(0, "CommandLine", (Regex("x{1,70000}y"),)),
        DetectionItem(1, "CommandLine", (Regex("^ab+c$"),)),
    ]
    scanner = HyperscanScanner(RulePlan(items=items), tmp_path)
    assert scanner.covered == {1}
    assert scanner.decide([Event({"CommandLine": "abbc"})]) == [{1}]
    warm = HyperscanScanner(RulePlan(items=items), tmp_path)
    assert warm.covered == {1}


# -- the value memo and the keyword prefilter (several events per batch) -----------------------

batch_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["", "a", "A", "k", "1", "true", "TRUE", "0", "false", "x\u212ay", "\u0130"]),
    texts,
    st.sampled_from([0, 1, 2, True, False, 1.0, 0.0, 2.5, 1e-05, None]),
    st.lists(st.sampled_from(["a", "1", "true"]), max_size=2),
)
batch_events = st.lists(
    st.dictionaries(st.sampled_from((*FIELDS, "EventID")), batch_values, max_size=4),
    min_size=1,
    max_size=6,
)
batch_item_specs = st.lists(
    st.tuples(
        st.sampled_from((*FIELDS, "EventID", None)),
        st.lists(
            st.one_of(
                globs,
                st.sampled_from(
                    [Glob(("1",)), Glob(("true",)), Glob(("0",)), Glob((ANY, "ru", ANY))]
                ),
            ),
            min_size=1,
            max_size=3,
        ),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch_item_specs, batch_events, batch_events)
def test_property_batches_equal_python(
    specs: list[tuple[str | None, list[Glob], bool]],
    first: list[dict[str, Any]],
    second: list[dict[str, Any]],
) -> None:
    # Several events per batch and two batches: values are remembered across events and
    # batches; bools meet integers (True == 1), keys clash in case, lists take the slow path.
    items = make_items(specs)
    scanner = HyperscanScanner(RulePlan(items=items), None)
    covered = scanner.covered
    for batch in (first, second, first):
        got = scanner.decide([Event(dict(fields)) for fields in batch])
        assert got == [reference(items, fields, covered) for fields in batch]


def test_bool_never_meets_an_integer_entry() -> None:
    # EventID: 1 is true for the integer 1 and false for True, which hashes and compares equal.
    items = make_items([("EventID", [Glob(("1",))], False), ("EventID", [Glob(("true",))], False)])
    scanner = HyperscanScanner(RulePlan(items=items), None)
    batch = [Event({"EventID": 1}), Event({"EventID": True}), Event({"EventID": 1.0})]
    assert scanner.decide(batch) == [{0}, {1}, {0}]
    assert scanner.decide(list(reversed(batch))) == [{0}, {1}, {0}]


def test_literal_ending_on_the_last_byte_is_found() -> None:
    # Vectorscan 5.4 missed "$" at the end of "\xffwin-7$\xff" when the database also held a
    # pattern with a [^\xff]* run; buffers now end with a padding byte (hs_patterns.CLOSE).
    items = make_items(
        [
            ("SubjectUserName", [Glob((ANY, "$"))], False),
            ("SubjectUserName", [Glob((ANY, "\\foo", ANY))], False),
            ("SubjectUserName", [Glob((ANY, "abc"))], False),
        ]
    )
    scanner = HyperscanScanner(RulePlan(items=items), None)
    assert scanner.decide([Event({"SubjectUserName": "WIN-77LTAPHIQ1R$"})]) == [{0}]


def test_keyword_prefilter_ignores_keys_and_checks_values() -> None:
    items = make_items([(None, [Glob((ANY, "mimikatz", ANY))], False)])
    scanner = HyperscanScanner(RulePlan(items=items), None)
    batch = [
        Event({"mimikatz": "nothing here", "n": 5}),
        Event({"CommandLine": "x MimiKatz.exe", "n": 5}),
        Event({"Data": ["a", "MIMIKATZ"]}),
    ]
    assert scanner.decide(batch) == [set(), {0}, {0}]


def test_long_values_are_decided_but_not_kept() -> None:
    items = make_items([("ScriptBlockText", [Glob((ANY, "invoke-mimikatz", ANY))], False)])
    scanner = HyperscanScanner(RulePlan(items=items), None)
    long_text = "x" * 5000 + " Invoke-Mimikatz"
    batch = [Event({"ScriptBlockText": long_text}), Event({"ScriptBlockText": long_text})]
    assert scanner.decide(batch) == [{0}, {0}]
    assert len(scanner._value_memo) == 0  # scanned each time, never remembered


def test_translation_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = make_items([("CommandLine", [Glob((ANY, "whoami", ANY))], False)])
    first = HyperscanScanner(RulePlan(items=items), tmp_path)
    assert list(tmp_path.glob("hs-items-*.pickle")), "translation not cached"

    def no_translation(*args: object) -> None:
        raise AssertionError("translated again")

    monkeypatch.setattr(hs_scanner, "translate_plan", no_translation)
    again = HyperscanScanner(RulePlan(items=items), tmp_path)
    batch = [Event({"CommandLine": "WHOAMI /all"}), Event({"CommandLine": "dir"})]
    assert again.decide(batch) == first.decide(batch) == [{0}, set()]


def test_memo_starts_afresh_past_its_text_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from vedette.detect import hs_values

    monkeypatch.setattr(hs_values, "TEXT_LIMIT", 10)
    items = make_items([("CommandLine", [Glob((ANY, "whoami", ANY))], False)])
    scanner = HyperscanScanner(RulePlan(items=items), None)
    first = [Event({"CommandLine": "whoami /all"}), Event({"CommandLine": "dir"})]
    assert scanner.decide(first) == [{0}, set()]
    assert len(scanner._value_memo) == 2  # 14 characters: over the budget from now on
    assert scanner.decide([Event({"CommandLine": "x"})]) == [set()]
    assert len(scanner._value_memo) == 1  # cleared before the batch, then "x" learned


def test_list_values_are_remembered_by_content_and_types() -> None:
    items = make_items(
        [
            ("answers", [Glob((ANY, "evil", ANY)), Glob((ANY, "com"))], True),  # all-of
            ("flags", [Glob(("1",))], False),
            ("flags", [Glob(("true",))], False),
        ]
    )
    scanner = HyperscanScanner(RulePlan(items=items), None)
    batch = [
        Event({"answers": ["evil.net", "a.com"], "flags": [1]}),  # elements complete the all-of
        Event({"answers": ["evil.net", "a.com"], "flags": [True]}),  # same tuple, other types
        Event({"answers": [], "flags": [1]}),
    ]
    assert scanner.decide(batch) == [{0, 1}, {0, 2}, {1}]
    assert scanner.decide(batch) == [{0, 1}, {0, 2}, {1}]
