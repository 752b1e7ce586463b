"""Necessary literals of regexes, and the items that wake each rule."""

from __future__ import annotations

import pytest

from vedette.detect import Engine
from vedette.detect.plan import ANY, Glob, ItemRef, Regex, make_glob
from vedette.detect.prefilter import regex_requirement
from vedette.detect.triggers import item_commonness, trigger_items


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"ipconfig\s+/all", {"ipconfig"}),
        (r"ipconfig\s+/all|net\s+config", {"ipconfig", "config"}),
        (r"(?:abc)+x*yz", {"abc"}),
        (r"(?:abc)?defg", {"defg"}),
        (r"(?i)MiMiKaTz", {"mimikatz"}),
        (r"[a-z]+\.exe", {".exe"}),
        (r"foo|[0-9]+", None),  # one branch has no literal: no requirement
        (r"^\d+$", None),
        (r"(unclosed", None),
    ],
)
def test_regex_requirement(pattern: str, expected: set[str] | None) -> None:
    got = regex_requirement(pattern)
    assert (set(got) if got is not None else None) == expected


def test_regex_items_get_a_substring_guard() -> None:
    engine = Engine.from_yaml(
        """
title: Guarded
id: 5a5bd5b4-7f9e-4a41-9d7b-000000000003
status: test
level: low
logsource: {product: windows, category: process_creation}
detection:
    selection:
        CommandLine|re: 'net\\s+config'
    condition: selection
""",
        scanner="python",
    )
    plan = engine.plan
    (rule,) = plan.rules
    items = [plan.items[i] for i in rule.item_ids]
    (regex,) = [i for i in items if isinstance(i.matchers[0], Regex)]
    (guard,) = [i for i in items if isinstance(i.matchers[0], Glob)]
    assert guard.field == regex.field == "CommandLine"
    assert guard.matchers == (make_glob([ANY, "config", ANY]),)
    assert guard.item_id in engine.scanner.covered  # type: ignore[union-attr]
    assert regex.item_id not in engine.scanner.covered  # type: ignore[union-attr]
    # the rule is woken only by the guard, and the regex decides
    triggers = trigger_items(rule, engine.scanner.covered, item_commonness(plan.items, plan.rules))  # type: ignore[union-attr]
    assert triggers == (guard.item_id,)


def test_common_items_do_not_wake_rules() -> None:
    rules = [
        f"""
title: Web {n}
id: 5a5bd5b4-7f9e-4a41-9d7b-00000000010{n}
status: test
level: low
logsource: {{category: webserver}}
detection:
    selection:
        cs-method: GET
        cs-uri-query|contains: '/secret{n}'
    condition: selection
"""
        for n in range(3)
    ]
    engine = Engine.from_yaml(*rules, scanner="python")
    plan = engine.plan
    commonness = item_commonness(plan.items, plan.rules)
    covered = engine.scanner.covered  # type: ignore[union-attr]
    for rule in plan.rules:
        (trigger,) = trigger_items(rule, covered, commonness) or ()
        assert plan.items[trigger].field == "cs-uri-query"


def test_rules_that_fire_without_true_items_are_never_gated() -> None:
    engine = Engine.from_yaml(
        """
title: Not only
id: 5a5bd5b4-7f9e-4a41-9d7b-000000000004
status: test
level: low
logsource: {product: windows, category: process_creation}
detection:
    filter:
        Image|endswith: '.exe'
    condition: not filter
""",
        scanner="python",
    )
    plan = engine.plan
    (rule,) = plan.rules
    assert not rule.needs_true_item
    commonness = item_commonness(plan.items, plan.rules)
    assert trigger_items(rule, engine.scanner.covered, commonness) is None  # type: ignore[union-attr]
    assert isinstance(rule.selections[0].tree, ItemRef)
