"""A parser for the STIX 2.1 patterning language, and its reduction to matchable observables.

Grammar (STIX 2.1 §9, the part Vedette parses)::

    pattern      := obs_or
    obs_or       := obs_and ("OR" obs_and)*
    obs_and      := obs_seq ("AND" obs_seq)*
    obs_seq      := obs_unit ("FOLLOWEDBY" obs_unit)*
    obs_unit     := ("[" cmp_or "]" | "(" obs_or ")") qualifier*
    qualifier    := "WITHIN" num "SECONDS" | "REPEATS" int "TIMES" | "START" t'..' "STOP" t'..'
    cmp_or       := cmp_and ("OR" cmp_and)*
    cmp_and      := cmp_unit ("AND" cmp_unit)*
    cmp_unit     := "(" cmp_or ")" | ["NOT"]? "EXISTS" path | path ["NOT"] op literal
    op           := = != < <= > >= IN LIKE MATCHES ISSUBSET ISSUPERSET

Everything parses; :func:`reduce_pattern` then turns the parsed tree into disjunctive normal
form over the observables Vedette can match in one event (address, domain, URL, hash, email)
and says precisely why any other part cannot be evaluated, so nothing is silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vedette.intel.model import HASH_LENGTHS

Atom = tuple[str, str]
"""A matchable observable: (indicator type, raw value)."""

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<prefixed>[thb]'(?:[^'\\]|\\.)*')
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[\[\]\(\),:])
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<dot>\.)
  | (?P<star>\*)
    """,
    re.VERBOSE,
)
_KEYWORD_OPS = {"IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"}
MAX_CONJUNCTIONS = 512


class PatternError(ValueError):
    """A pattern that does not parse (the message says where)."""


@dataclass(slots=True, frozen=True)
class Comparison:
    """``object_type:path op value`` (``negated`` for ``NOT``)."""

    object_type: str
    path: tuple[str | int, ...]
    op: str
    value: Any
    negated: bool = False

    @property
    def path_text(self) -> str:
        """``file:hashes.'SHA-256'`` style text of the object path."""
        parts = [self.object_type + ":"]
        for i, part in enumerate(self.path):
            if isinstance(part, int) or part == "*":
                parts.append(f"[{part}]")
            else:
                parts.append(("." if i else "") + (part if part.isidentifier() else f"'{part}'"))
        return "".join(parts)


@dataclass(slots=True, frozen=True)
class BoolExpr:
    """``AND`` / ``OR`` over comparisons (inside brackets) or observations (outside)."""

    op: str
    items: tuple[Any, ...]


@dataclass(slots=True, frozen=True)
class Observation:
    """``[ comparison expression ]`` with any qualifiers that follow it."""

    expr: Any
    qualifiers: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class ObsExpr:
    """``AND`` / ``OR`` / ``FOLLOWEDBY`` between observations, with qualifiers."""

    op: str
    items: tuple[Any, ...]
    qualifiers: tuple[str, ...] = ()


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise PatternError(f"unexpected character {text[pos]!r} at offset {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, match.group(), pos))
        pos = match.end()
    return tokens


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def peek_word(self) -> str:
        token = self.peek()
        return token[1].upper() if token and token[0] == "word" else ""

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise PatternError(f"unexpected end of pattern (expected {value or 'more'})")
        if value is not None and token[1].upper() != value:
            raise PatternError(f"expected {value!r} at offset {token[2]}, found {token[1]!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        tree = self.obs_or()
        if self.peek() is not None:
            token = self.take()
            raise PatternError(f"unexpected {token[1]!r} at offset {token[2]}")
        return tree

    def _chain(self, op: str, sub: Any) -> Any:
        items = [sub()]
        while self.peek_word() == op:
            self.take()
            items.append(sub())
        return items[0] if len(items) == 1 else ObsExpr(op, tuple(items))

    def obs_or(self) -> Any:
        return self._chain("OR", self.obs_and)

    def obs_and(self) -> Any:
        return self._chain("AND", self.obs_seq)

    def obs_seq(self) -> Any:
        return self._chain("FOLLOWEDBY", self.obs_unit)

    def obs_unit(self) -> Any:
        token = self.take()
        unit: Any
        if token[1] == "[":
            expr = self.cmp_or()
            self.take("]")
            unit = Observation(expr)
        elif token[1] == "(":
            unit = self.obs_or()
            self.take(")")
        else:
            raise PatternError(f"expected '[' or '(' at offset {token[2]}, found {token[1]!r}")
        qualifiers = self.qualifiers()
        if not qualifiers:
            return unit
        if isinstance(unit, Observation):
            return Observation(unit.expr, unit.qualifiers + qualifiers)
        return ObsExpr(unit.op, unit.items, unit.qualifiers + qualifiers)

    def qualifiers(self) -> tuple[str, ...]:
        found: list[str] = []
        while self.peek_word() in ("WITHIN", "REPEATS", "START"):
            word = self.take()[1].upper()
            if word == "WITHIN":
                found.append(f"WITHIN {self.take()[1]} {self.take('SECONDS')[1]}")
            elif word == "REPEATS":
                found.append(f"REPEATS {self.take()[1]} {self.take('TIMES')[1]}")
            else:
                start = self.take()[1]
                self.take("STOP")
                found.append(f"START {start} STOP {self.take()[1]}")
        return tuple(found)

    def cmp_or(self) -> Any:
        items = [self.cmp_and()]
        while self.peek_word() == "OR":
            self.take()
            items.append(self.cmp_and())
        return items[0] if len(items) == 1 else BoolExpr("OR", tuple(items))

    def cmp_and(self) -> Any:
        items = [self.cmp_unit()]
        while self.peek_word() == "AND":
            self.take()
            items.append(self.cmp_unit())
        return items[0] if len(items) == 1 else BoolExpr("AND", tuple(items))

    def cmp_unit(self) -> Any:
        token = self.peek()
        if token is not None and token[1] == "(":
            self.take()
            inner = self.cmp_or()
            self.take(")")
            return inner
        negated = False
        if self.peek_word() == "NOT":
            self.take()
            negated = True
        if self.peek_word() == "EXISTS":
            self.take()
            object_type, path = self.object_path()
            return Comparison(object_type, path, "EXISTS", None, negated)
        object_type, path = self.object_path()
        if self.peek_word() == "NOT":
            self.take()
            negated = True
        op_token = self.take()
        op = op_token[1].upper()
        if op_token[0] != "op" and op not in _KEYWORD_OPS:
            raise PatternError(f"expected a comparison operator at offset {op_token[2]}")
        return Comparison(object_type, path, op, self.literal(), negated)

    def object_path(self) -> tuple[str, tuple[str | int, ...]]:
        kind, text, offset = self.take()
        if kind != "word":
            raise PatternError(f"expected an object type at offset {offset}, found {text!r}")
        self.take(":")
        path: list[str | int] = [self._component()]
        while (token := self.peek()) is not None and token[1] in (".", "["):
            self.take()
            if token[1] == ".":
                path.append(self._component())
            else:
                index = self.take()
                path.append("*" if index[1] == "*" else int(index[1]))
                self.take("]")
        return text.lower(), tuple(path)

    def _component(self) -> str:
        kind, text, offset = self.take()
        if kind == "word":
            return text
        if kind == "string":
            return _unquote(text)
        raise PatternError(f"expected a property name at offset {offset}, found {text!r}")

    def literal(self) -> Any:
        kind, text, offset = self.take()
        if kind == "string":
            return _unquote(text)
        if kind == "prefixed":
            return _unquote(text[1:])
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text == "(":
            values = [self.literal()]
            while self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                self.take()
                values.append(self.literal())
            self.take(")")
            return tuple(values)
        raise PatternError(f"expected a literal at offset {offset}, found {text!r}")


MAX_PATTERN_DEPTH = 64
"""Deepest nesting of brackets and parentheses a pattern may have: the parser and the reduction
recurse, and 300 nested parentheses once ended a whole feed with an internal error."""


def parse_pattern(text: str) -> Any:
    """Parse a STIX pattern into a tree of Observation / ObsExpr / BoolExpr / Comparison."""
    parser = _Parser(text)
    depth = 0
    for kind, value, offset in parser.tokens:
        if kind != "punct":
            continue
        if value in "([":
            depth += 1
            if depth > MAX_PATTERN_DEPTH:
                raise PatternError(
                    f"pattern nested more than {MAX_PATTERN_DEPTH} levels deep at offset {offset}"
                )
        elif value in ")]":
            depth -= 1
    try:
        return parser.parse()
    except RecursionError as exc:  # deep without brackets: a very long chain of operators
        raise PatternError("pattern nested too deeply to read") from exc


# --- reduction to matchable observables --------------------------------------------------


@dataclass(slots=True, frozen=True)
class Unsupported:
    """A part of a pattern Vedette cannot evaluate, and why."""

    reason: str
    path: str = ""


_HASH_NAMES = {
    name.replace("-", "").upper(): algo
    for algo in HASH_LENGTHS
    for name in (algo, algo.replace("sha", "sha-"))
}
_VALUE_PATHS: dict[tuple[str, tuple[str, ...]], str] = {
    ("ipv4-addr", ("value",)): "ip",
    ("ipv6-addr", ("value",)): "ip",
    ("domain-name", ("value",)): "domain",
    ("url", ("value",)): "url",
    ("email-addr", ("value",)): "email",
    ("email-message", ("from_ref", "value")): "email",
    ("email-message", ("sender_ref", "value")): "email",
    ("network-traffic", ("src_ref", "value")): "ip",
    ("network-traffic", ("dst_ref", "value")): "ip",
    ("domain-name", ("resolves_to_refs", "*", "value")): "ip",
}


def _atom_type(cmp: Comparison) -> str | Unsupported:
    names = tuple(str(p) for p in cmp.path)
    if cmp.object_type in ("file", "artifact") and len(names) == 2 and names[0] == "hashes":
        algo = _HASH_NAMES.get(names[1].replace("-", "").upper())
        return algo or Unsupported(f"hash algorithm {names[1]!r} is not matched", cmp.path_text)
    if cmp.object_type == "file" and names == ("extensions", "windows-pebinary-ext", "imphash"):
        return "imphash"
    kind = _VALUE_PATHS.get((cmp.object_type, names))
    if kind is None:
        return Unsupported("object path is not matched by Vedette", cmp.path_text)
    return kind


def _reduce_comparison(cmp: Comparison) -> list[list[Atom | Unsupported]]:
    kind = _atom_type(cmp)
    if isinstance(kind, Unsupported):
        return [[kind]]
    if cmp.negated or cmp.op not in ("=", "IN", "ISSUBSET"):
        op = ("NOT " if cmp.negated else "") + cmp.op
        return [[Unsupported(f"operator {op} is not evaluated", cmp.path_text)]]
    if cmp.op == "ISSUBSET" and kind != "ip":
        return [[Unsupported("ISSUBSET is only evaluated on addresses", cmp.path_text)]]
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    if cmp.op == "IN" and not isinstance(cmp.value, tuple):
        return [[Unsupported("IN needs a list of values", cmp.path_text)]]
    return [[(kind, str(v))] for v in values]


def _reduce_comparisons(node: Any) -> list[list[Atom | Unsupported]]:
    if isinstance(node, Comparison):
        return _reduce_comparison(node)
    parts = [_reduce_comparisons(item) for item in node.items]
    if node.op == "OR":
        return [conj for part in parts for conj in part]
    product: list[list[Atom | Unsupported]] = [[]]
    for part in parts:
        product = [left + right for left in product for right in part]
        if len(product) > MAX_CONJUNCTIONS:
            return [[Unsupported(f"expands to more than {MAX_CONJUNCTIONS} alternatives")]]
    return product


def reduce_pattern(tree: Any) -> list[list[Atom | Unsupported]]:
    """Disjunctive normal form of a parsed pattern: alternatives, each a conjunction.

    Each alternative must hold within one event. Observation-level ``AND``, ``FOLLOWEDBY``
    and qualifiers (``WITHIN``, ``REPEATS``, ``START/STOP``) relate several events and are
    returned as :class:`Unsupported` alternatives.
    """
    if isinstance(tree, Observation):
        if tree.qualifiers:
            return [[Unsupported(f"qualifier {tree.qualifiers[0]} spans several events")]]
        return _reduce_comparisons(tree.expr)
    if isinstance(tree, ObsExpr):
        if tree.qualifiers:
            return [[Unsupported(f"qualifier {tree.qualifiers[0]} spans several events")]]
        if tree.op != "OR":
            return [[Unsupported(f"observation operator {tree.op} spans several events")]]
        return [conj for item in tree.items for conj in reduce_pattern(item)]
    raise PatternError(f"unexpected pattern node {type(tree).__name__}")
