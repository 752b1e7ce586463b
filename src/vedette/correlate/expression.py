"""Boolean condition expressions of temporal correlations (``failed and not success``).

pySigma 2 accepts a string condition on ``temporal`` rules: rule names joined by ``and``,
``or``, ``not`` and parentheses, true when the named rules did (or did not) fire in the window.
This is a small recursive-descent parser to a closure over the set of rules seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Set

Predicate = Callable[[Set[str]], bool]

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_\-.]*)")
_KEYWORDS = frozenset({"and", "or", "not"})


class ExpressionError(ValueError):
    """An expression that does not parse; the message says where."""


def referenced_names(expression: str) -> list[str]:
    """Rule names in ``expression``, in order of first appearance."""
    names: list[str] = []
    for token in _tokens(expression):
        if token not in _KEYWORDS and token not in "()" and token not in names:
            names.append(token)
    return names


def compile_expression(expression: str) -> Predicate:
    """A predicate over the set of rule names seen in a window."""
    tokens = _tokens(expression)
    predicate, position = _parse_or(tokens, 0)
    if position != len(tokens):
        raise ExpressionError(f"unexpected {tokens[position]!r} in {expression!r}")
    return predicate


def has_negation(expression: str) -> bool:
    """True when ``expression`` uses ``not`` (also written ``not(...)``, without a space)."""
    try:
        return "not" in _tokens(expression)
    except ExpressionError:
        return False  # reported where the expression is compiled


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionError(f"cannot read {text[position:]!r} in {expression!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _parse_or(tokens: list[str], position: int) -> tuple[Predicate, int]:
    return _parse_chain(tokens, position, "or", _parse_and, any)


def _parse_and(tokens: list[str], position: int) -> tuple[Predicate, int]:
    return _parse_chain(tokens, position, "and", _parse_not, all)


def _parse_chain(
    tokens: list[str],
    position: int,
    keyword: str,
    operand: Callable[[list[str], int], tuple[Predicate, int]],
    combine: Callable[[Iterable[bool]], bool],
) -> tuple[Predicate, int]:
    """Operands joined by ``keyword``, folded with ``combine`` (``any`` or ``all``)."""
    parts: list[Predicate] = []
    part, position = operand(tokens, position)
    parts.append(part)
    while position < len(tokens) and tokens[position] == keyword:
        part, position = operand(tokens, position + 1)
        parts.append(part)
    if len(parts) == 1:
        return parts[0], position
    return (lambda seen: combine(p(seen) for p in parts)), position


def _parse_not(tokens: list[str], position: int) -> tuple[Predicate, int]:
    if position < len(tokens) and tokens[position] == "not":
        inner, position = _parse_not(tokens, position + 1)
        return (lambda seen: not inner(seen)), position
    return _parse_atom(tokens, position)


def _parse_atom(tokens: list[str], position: int) -> tuple[Predicate, int]:
    if position >= len(tokens):
        raise ExpressionError("expression ends too early")
    token = tokens[position]
    if token == "(":
        inner, position = _parse_or(tokens, position + 1)
        if position >= len(tokens) or tokens[position] != ")":
            raise ExpressionError("missing ')'")
        return inner, position + 1
    if token in _KEYWORDS or token == ")":
        raise ExpressionError(f"unexpected {token!r}")
    return (lambda seen: token in seen), position + 1
