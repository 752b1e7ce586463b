"""Sigma condition expressions: parse a condition string into a tree over search identifiers.

Grammar (specification v2.1, "Condition"; least to most binding: or, and, not, x of, brackets)::

    expr     := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | atom
    atom     := "(" expr ")" | ("1" | "all") "of" (pattern | "them") | identifier

``them`` is every search identifier not starting with ``_``; a pattern uses ``*`` wildcards at any
position and matches identifiers by name (an explicit pattern may match ``_`` identifiers, which is
how Sigma filters name theirs). Keywords are lower case, as the specification writes them;
``any of`` is accepted as a synonym of ``1 of`` because pySigma accepts it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vedette.detect.plan import And, Const, Node, Not, Or, SelRef

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


class ConditionError(ValueError):
    """A condition that cannot be parsed or names an unknown search identifier."""


def parse_condition(text: str, names: Sequence[str]) -> Node:
    """Parse ``text`` into a tree of :class:`SelRef` (indexes into ``names``)."""
    if "|" in text:
        raise ConditionError(
            f"aggregation in condition {text!r}: '| count() ...' and '| near' are Sigma 1 "
            "syntax that Sigma 2 replaced with correlation rules"
        )
    parser = _Parser(_TOKEN.findall(text), names, text)
    node = parser.expr()
    if parser.pos != len(parser.tokens):
        raise ConditionError(f"unexpected {parser.tokens[parser.pos]!r} in condition {text!r}")
    return node


def parse_conditions(texts: Sequence[str], names: Sequence[str]) -> Node:
    """A condition list: the conditions are OR-linked (specification, "Condition")."""
    if not texts:
        raise ConditionError("rule has no condition")
    nodes = [parse_condition(t, names) for t in texts]
    return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z")


class _Parser:
    __slots__ = ("index", "names", "pos", "text", "tokens")

    def __init__(self, tokens: list[str], names: Sequence[str], text: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(names)}
        self.text = text

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ConditionError(f"condition {self.text!r} ends too early")
        self.pos += 1
        return tok

    def expr(self) -> Node:
        args = [self.and_expr()]
        while self.peek() == "or":
            self.pos += 1
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else Or(tuple(args))

    def and_expr(self) -> Node:
        args = [self.not_expr()]
        while self.peek() == "and":
            self.pos += 1
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else And(tuple(args))

    def not_expr(self) -> Node:
        if self.peek() == "not":
            self.pos += 1
            return Not(self.not_expr())
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok == "(":
            node = self.expr()
            if self.take() != ")":
                raise ConditionError(f"missing ')' in condition {self.text!r}")
            return node
        if tok in ("1", "all", "any") and self.peek() == "of":
            self.pos += 1
            return self.quantifier(tok, self.take())
        if tok in ("and", "or", "of", ")"):
            raise ConditionError(f"unexpected {tok!r} in condition {self.text!r}")
        if tok not in self.index:
            raise ConditionError(f"condition names unknown search identifier {tok!r}")
        return SelRef(self.index[tok])

    def quantifier(self, count: str, target: str) -> Node:
        if target in ("(", ")"):
            raise ConditionError(f"'{count} of' needs a pattern in condition {self.text!r}")
        if target == "them":
            picked = [i for i, n in enumerate(self.names) if not n.startswith("_")]
        else:
            regex = _pattern_regex(target)
            picked = [i for i, n in enumerate(self.names) if regex.match(n)]
            if not picked:
                raise ConditionError(f"pattern {target!r} matches no search identifier")
        refs = tuple(SelRef(i) for i in picked)
        if not refs:  # "them" over only "_" identifiers: all of nothing holds, 1 of nothing not
            return Const(count == "all")
        if len(refs) == 1:
            return refs[0]
        return And(refs) if count == "all" else Or(refs)
