"""Rule conditions as generated Python code over the set of true items.

Each rule becomes ``def rN(T, U): return <expr>``, where a scanner-decided item ``i`` reads
``(i in T)`` and any other item ``U(i)`` (decided lazily, once per event); selections are
inlined, so a condition costs a few set lookups and short-circuits like hand-written code. A
second function per rule, ``mN(T, U)``, names the selections that matched (for the detection,
once the rule fired). The module is compiled once per rule set and scanner; its code object
marshals into the cache (:data:`CODE_VERSION` is part of the cache key).
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Sequence
from types import CodeType
from typing import Any

from vedette.detect.plan import And, CompiledRule, Const, ItemRef, Node, Not, Or, Selection, SelRef

ConditionFn = Callable[[set[int], Callable[[int], bool]], bool]
MatchedFn = Callable[[set[int], Callable[[int], bool]], tuple[str, ...]]

CODE_VERSION = 2
"""Bumped when the generated module changes shape (2: the ``MATCHED`` functions)."""


def compile_conditions(rules: Sequence[CompiledRule], covered: frozenset[int]) -> CodeType:
    """The code object of a module defining ``RULES``, one condition function per rule."""
    lines: list[str] = []
    for index, rule in enumerate(rules):
        expr = _expr(rule.condition, rule.selections, covered)
        lines.append(f"def r{index}(T, U):\n    return {expr}\n")
        body = [
            f"    if {_expr(s.tree, rule.selections, covered)}:\n        out.append({s.name!r})\n"
            for s in rule.selections
            if not s.name.startswith("_")
        ]
        lines.append(f"def m{index}(T, U):\n    out = []\n{''.join(body)}    return tuple(out)\n")
    names = range(len(rules))
    source = "".join(lines)
    source += "RULES = [" + ", ".join(f"r{i}" for i in names) + "]\n"
    source += "MATCHED = [" + ", ".join(f"m{i}" for i in names) + "]\n"
    return compile(source, "<vedette rule conditions>", "exec")


def load_conditions(code: CodeType) -> tuple[list[ConditionFn], list[MatchedFn]]:
    """The condition functions of a compiled module, and its matched-selection functions."""
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    conditions: list[ConditionFn] = namespace["RULES"]
    matched: list[MatchedFn] = namespace["MATCHED"]
    return conditions, matched


def dump_code(code: CodeType) -> bytes:
    """Bytes of a code object (same interpreter version only; the cache key says which)."""
    return marshal.dumps(code)


def undump_code(data: bytes) -> CodeType:
    """The code object back from :func:`dump_code`."""
    code = marshal.loads(data)
    if not isinstance(code, CodeType):
        raise ValueError("not a code object")
    return code


def _expr(node: Node, selections: Sequence[Selection], covered: frozenset[int]) -> str:
    if isinstance(node, ItemRef):
        i = node.item_id
        return f"({i} in T)" if i in covered else f"U({i})"
    if isinstance(node, SelRef):
        return _expr(selections[node.index].tree, selections, covered)
    if isinstance(node, And):
        return "(" + " and ".join(_expr(a, selections, covered) for a in node.args) + ")"
    if isinstance(node, Or):
        return "(" + " or ".join(_expr(a, selections, covered) for a in node.args) + ")"
    if isinstance(node, Not):
        return "(not " + _expr(node.arg, selections, covered) + ")"
    assert isinstance(node, Const)
    return "True" if node.value else "False"
