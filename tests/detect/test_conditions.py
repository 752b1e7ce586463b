"""Conditions, keyword searches and which selections a detection names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vedette.detect import Engine
from vedette.detect.conditions import ConditionError, parse_condition
from vedette.detect.plan import And, Const, Not, Or, SelRef
from vedette.events import Event, LogSource

Fires = Callable[..., bool]  # the `fires` fixture of tests/detect/conftest.py

THREE = """
a:
    A: 1
b:
    B: 1
c:
    C: 1
condition: {condition}
"""


def truth_table(fires: Fires, condition: str) -> list[bool]:
    """Result of ``condition`` for every assignment of selections a, b, c (a is the high bit)."""
    out = []
    for n in range(8):
        fields = {k: 1 if n & bit else 0 for k, bit in (("A", 4), ("B", 2), ("C", 1))}
        out.append(fires(THREE.format(condition=condition), fields))
    return out


def expected(fn: Callable[[bool, bool, bool], bool]) -> list[bool]:
    return [fn(bool(n & 4), bool(n & 2), bool(n & 1)) for n in range(8)]


@pytest.mark.parametrize(
    ("condition", "fn"),
    [
        ("a", lambda a, b, c: a),
        ("a and b", lambda a, b, c: a and b),
        ("a or b", lambda a, b, c: a or b),
        ("not a", lambda a, b, c: not a),
        ("a or b and c", lambda a, b, c: a or (b and c)),  # and binds tighter than or
        ("(a or b) and c", lambda a, b, c: (a or b) and c),
        ("not a and b", lambda a, b, c: (not a) and b),  # not binds tighter than and
        ("not (a and b)", lambda a, b, c: not (a and b)),
        ("a and not b or c", lambda a, b, c: (a and not b) or c),
        ("not not a", lambda a, b, c: a),
        ("1 of them", lambda a, b, c: a or b or c),
        ("all of them", lambda a, b, c: a and b and c),
        ("1 of * and not c", lambda a, b, c: (a or b) and not c),
        ("all of a* or c", lambda a, b, c: a or c),
        ("a and (b or not (c))", lambda a, b, c: a and (b or not c)),
    ],
)
def test_condition_truth_tables(fires: Fires, condition: str, fn: Any) -> None:
    assert truth_table(fires, condition) == expected(fn)


def test_patterns_and_underscore_identifiers(fires: Fires) -> None:
    rule = """
selection_img:
    Image|endswith: '\\x.exe'
selection_cli:
    CommandLine|contains: 'evil'
_helper:
    User: 'bob'
filter_main:
    User: 'SYSTEM'
condition: {condition}
"""
    hit = {"Image": r"C:\x.exe", "CommandLine": "evil", "User": "alice"}
    assert fires(rule.format(condition="all of selection_*"), hit)
    assert not fires(rule.format(condition="all of selection_*"), {**hit, "CommandLine": "ok"})
    assert fires(rule.format(condition="1 of selection_* and not 1 of filter_*"), hit)
    assert not fires(
        rule.format(condition="1 of selection_* and not 1 of filter_*"), {**hit, "User": "system"}
    )
    # "them" skips identifiers starting with "_": _helper (User: bob) is not required here
    assert fires(rule.format(condition="all of them"), {**hit, "User": "system"}) is True
    assert fires(rule.format(condition="1 of _h*"), {"User": "bob"})
    # patterns match anywhere: '*_cli' picks selection_cli only
    assert fires(rule.format(condition="all of *_cli"), {"CommandLine": "evil"})


def test_them_with_only_underscore_identifiers() -> None:
    names = ["_a", "_b"]
    assert parse_condition("all of them", names) == Const(True)
    assert parse_condition("1 of them", names) == Const(False)


def test_condition_list_is_or(fires: Fires) -> None:
    rule = "a:\n    A: 1\nb:\n    B: 1\ncondition:\n    - a\n    - b\n"
    assert fires(rule, {"A": 1, "B": 0})
    assert fires(rule, {"A": 0, "B": 1})
    assert not fires(rule, {"A": 0, "B": 0})


def test_parse_tree_shapes() -> None:
    names = ["a", "b", "c"]
    assert parse_condition("a or b and not c", names) == Or(
        (SelRef(0), And((SelRef(1), Not(SelRef(2)))))
    )
    assert parse_condition("1 of them", names) == Or((SelRef(0), SelRef(1), SelRef(2)))


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("a and", "ends too early"),
        ("a b", "unexpected"),
        ("(a", "ends too early"),
        ("(a b", "missing"),
        ("nothere", "unknown search identifier"),
        ("1 of zz*", "matches no search identifier"),
        ("a or or b", "unexpected"),
        ("a | count() by host > 5", "Sigma 1 syntax"),
        ("a | near b", "correlation rules"),
    ],
)
def test_bad_conditions(condition: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        parse_condition(condition, ["a", "b"])


def test_bad_condition_is_a_load_error(load_error: Any) -> None:
    reason = load_error("selection:\n    A: 1\ncondition: selection and missing")
    assert "missing" in reason


# -- keywords ----------------------------------------------------------------------------------


def test_keywords_search_every_value(fires: Fires) -> None:
    rule = "keywords:\n    - 'event::clear'\n    - 'event::drop'\ncondition: keywords"
    assert fires(rule, {"CommandLine": "mimikatz EVENT::Clear exit"})
    assert fires(rule, {"Other": "x", "Payload": ["a", "event::drop"]})
    assert not fires(rule, {"CommandLine": "event:clear"})


def test_keywords_with_all(fires: Fires) -> None:
    rule = "keywords:\n    '|all':\n        - 'OabVirtualDirectory'\n        - ' -ExternalUrl '\n"
    rule += "condition: keywords"
    assert fires(rule, {"A": "Set-OabVirtualDirectory", "B": "x -externalurl y"})
    assert not fires(rule, {"A": "Set-OabVirtualDirectory -InternalUrl"})


def test_keyword_numbers_and_wildcards(fires: Fires) -> None:
    rule = "keywords:\n    - 4625\n    - 'fail?d log*n'\ncondition: keywords"
    assert fires(rule, {"EventID": 4625})
    assert fires(rule, {"Message": "user FAILED LOGON here"})
    assert not fires(rule, {"Message": "failed"})


def test_keywords_with_selection(fires: Fires) -> None:
    rule = "selection:\n    EventID: 1\nkeywords:\n    - 'evil'\ncondition: selection and keywords"
    assert fires(rule, {"EventID": 1, "X": "very evil"})
    assert not fires(rule, {"EventID": 2, "X": "very evil"})


# -- explainability ------------------------------------------------------------------------------


def test_detection_names_the_matched_selections() -> None:
    engine = Engine.from_yaml(
        """
title: Explain
id: 5a5bd5b4-7f9e-4a41-9d7b-000000000002
name: explain_rule
status: experimental
level: critical
tags: [attack.execution, attack.t1059.001, attack.t1059, attack.g0016, car.2016-04-005]
logsource: {product: windows, category: process_creation}
detection:
    selection_img:
        Image|endswith: '\\powershell.exe'
    selection_cli:
        CommandLine|contains: ' -enc '
    selection_other:
        CommandLine|contains: 'never'
    filter:
        User: SYSTEM
    condition: 1 of selection_* and not filter
""",
        scanner="python",
    )
    event = Event(
        {"Image": r"C:\powershell.exe", "CommandLine": "x -enc y", "User": "bob"},
        LogSource("windows", frozenset(), frozenset({"process_creation"})),
    )
    (detection,) = engine.match([event])
    assert detection.matched == ("selection_img", "selection_cli")
    assert detection.rule_id == "5a5bd5b4-7f9e-4a41-9d7b-000000000002"
    assert detection.rule_name == "explain_rule"
    assert detection.level == "critical"
    assert detection.status == "experimental"
    assert [a.technique_id for a in detection.attack] == ["T1059.001", "T1059"]
    assert detection.tags[0] == "attack.execution"
    assert detection.event is event
    assert detection.kind == "sigma"
    assert engine.rule("explain_rule") is engine.rule("5a5bd5b4-7f9e-4a41-9d7b-000000000002")


def test_matched_names_every_true_selection_even_odd_names() -> None:
    # The matched selections come from generated code: names with quotes must survive it, and
    # a selection whose name starts with "_" is never shown.
    rule = """
title: Odd names
id: 5f0e8c1e-2b3a-4c5d-9e8f-0a1b2c3d4e5f
logsource: {product: windows, category: process_creation}
detection:
    sel'quote: {Image|endswith: '\\\\cmd.exe'}
    "sel\\"dq": {CommandLine|contains: whoami}
    _helper: {User: admin}
    other: {CommandLine|contains: never}
    condition: sel'quote and not other
"""
    engine = Engine.from_yaml(rule)
    event = Event(
        {"Image": "C:\\\\x\\\\cmd.exe", "CommandLine": "whoami", "User": "admin"},
        logsource=LogSource("windows", frozenset(), frozenset({"process_creation"})),
    )
    (detection,) = engine.match([event])
    assert detection.matched == ("sel'quote", 'sel"dq')
