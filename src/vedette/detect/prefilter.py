"""Necessary literals: text that must occur in a value for a regex (or glob) to match it.

A regular expression item costs a Python ``re.search`` per event, while a substring item is
decided by the scanner for free. When every match of an item must contain one of a few literals,
the compiler puts a substring item before it (``contains(literal) and regex``): the condition
means the same, but the rule is only woken, and the regex only run, when a literal is present.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from vedette.detect.plan import AnyOf, Glob, Regex, ValueMatcher

_parser: Any = importlib.import_module("re._parser")  # sre_parse without its deprecation alias
_constants: Any = importlib.import_module("re._constants")

_LITERAL = _constants.LITERAL
_SUBPATTERN = _constants.SUBPATTERN
_BRANCH = _constants.BRANCH
_REPEATS = (_constants.MAX_REPEAT, _constants.MIN_REPEAT)
_POSSESSIVE = getattr(_constants, "POSSESSIVE_REPEAT", None)

Requirement = frozenset[str]
"""A set of literals at least one of which occurs in every matching value (lower-cased)."""


def regex_requirement(pattern: str) -> Requirement | None:
    """The best requirement of a regex, or None when there is no usable one."""
    try:
        parsed = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    return _best(_sequence(list(parsed)))


def matcher_requirement(matcher: ValueMatcher) -> Requirement | None:
    """The requirement of one matcher (glob, regex, or AnyOf of them)."""
    if isinstance(matcher, Glob):
        literals = [t for t in matcher.tokens if isinstance(t, str)]
        if not literals:
            return None
        return frozenset({max(literals, key=len).lower()})
    if isinstance(matcher, Regex):
        return regex_requirement(matcher.pattern)
    if isinstance(matcher, AnyOf):
        union: set[str] = set()
        for alternative in matcher.alternatives:
            part = matcher_requirement(alternative)
            if part is None:
                return None
            union |= part
        return frozenset(union)
    return None


def _score(requirement: Requirement) -> int:
    return min(len(literal) for literal in requirement)


def _best(candidates: list[Requirement]) -> Requirement | None:
    usable = [c for c in candidates if c and _score(c) >= 1]
    if not usable:
        return None
    return max(usable, key=lambda c: (_score(c), -len(c)))


def _sequence(nodes: list[tuple[Any, Any]]) -> list[Requirement]:
    """Every requirement of a sequence of parsed nodes (each one alone is necessary)."""
    out: list[Requirement] = []
    run: list[str] = []
    for op, arg in nodes:
        if op is _LITERAL:
            run.append(chr(arg))
            continue
        if run:
            out.append(frozenset({"".join(run).lower()}))
            run = []
        if op is _SUBPATTERN:
            out.extend(_sequence(list(arg[-1])))
        elif op in _REPEATS or (_POSSESSIVE is not None and op is _POSSESSIVE):
            low, _high, inner = arg
            if low >= 1:
                out.extend(_sequence(list(inner)))
        elif op is _BRANCH:
            branches = [_best(_sequence(list(branch))) for branch in arg[1]]
            if all(b is not None for b in branches):
                out.append(frozenset().union(*(b for b in branches if b is not None)))
    if run:
        out.append(frozenset({"".join(run).lower()}))
    return out
