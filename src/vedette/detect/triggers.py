"""Which true items should wake a rule: the smallest cheap "trigger set" of each rule.

A rule whose condition is false whenever all of its scanner-decided items are false need only be
evaluated for events where one of them is true. Waking it on *every* such item is correct but
wasteful: ``cs-method: GET and cs-uri-query|contains: '/etc/passwd'`` would be evaluated for every
GET request. Any subset S of the covered items with the property "all of S false implies the
condition is false" is enough, so starting from all covered items, the most widely shared ones
(likely to be true often) are dropped while the property holds, checked with three-valued logic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from vedette.detect.plan import CompiledRule, DetectionItem, Glob, evaluate


def item_commonness(items: Sequence[DetectionItem], rules: Sequence[CompiledRule]) -> list[float]:
    """A guess of how often each item is true: how many rules share it, short literals first."""
    usage: Counter[int] = Counter()
    for rule in rules:
        usage.update(rule.item_ids)
    out: list[float] = []
    for item in items:
        literal = sum(
            len(t)
            for m in item.matchers
            if isinstance(m, Glob)
            for t in m.tokens
            if isinstance(t, str)
        )
        out.append(usage[item.item_id] + 1.0 / (1 + literal))
    return out


def trigger_items(
    rule: CompiledRule, covered: frozenset[int], commonness: Sequence[float]
) -> tuple[int, ...] | None:
    """Covered items whose truth must wake ``rule``; None when it can fire without any."""
    mine = [i for i in rule.item_ids if i in covered]
    if _false_without(rule, set(mine)) is not True:
        return None
    keep = set(mine)
    for item_id in sorted(mine, key=lambda i: -commonness[i]):
        if len(keep) == 1:
            break
        keep.discard(item_id)
        if _false_without(rule, keep) is not True:
            keep.add(item_id)
    return tuple(sorted(keep))


def required_items(rule: CompiledRule, covered: frozenset[int]) -> frozenset[int] | None:
    """Covered items each of which must be true for ``rule`` to fire (None when there are none).

    The engine checks them with one subset test before calling a woken rule's condition: a rule
    woken by one true item is usually refused by another that is false, and the test costs a
    fraction of the call.
    """
    needed = frozenset(
        i for i in rule.item_ids if i in covered and _false_without(rule, {i}) is True
    )
    return needed or None


def _false_without(rule: CompiledRule, false_items: set[int]) -> bool:
    """True when the condition is certainly false once ``false_items`` are false."""
    verdict = evaluate(
        rule.condition, rule.selections, lambda i: False if i in false_items else None
    )
    return verdict is False
