"""Translate detection items of a :class:`RulePlan` into Hyperscan patterns.

Each field gets its own small database, scanned over each of the field's values rendered as
``\xff<value>\xff`` (lower-cased unless the patterns are ``cased``). ``\xff`` never occurs in
UTF-8 text, so it marks the value's ends exactly whatever the value contains, and each glob
becomes a pattern whose match *is* the glob's truth:

=================  ==========================
glob               pattern
=================  ==========================
``foo`` (equals)   ``\xfffoo\xff``
``foo*``           ``\xfffoo``
``*foo``           ``foo\xff``
``*foo*``          ``foo``
``a*b?c``          ``\xffa[^\xff]*b<one UTF-8 character>c\xff``
=================  ==========================

Keyword items (no field) form one more database, scanned over every value of the event joined
as ``\xffv1\xffv2\xff``; the same patterns hold because no pattern can cross a ``\xff``.

Why one database per field rather than one field-tagged buffer for the whole event: with the
whole SigmaHQ corpus in one database (``\xff<tag>=[^\xff]*foo`` patterns), the Hyperscan build
bundled with the ``hyperscan`` wheel (Vectorscan 5.4.x) missed real matches (a ``*.dll`` suffix
on a Sysmon 7 event) that the same pattern found in a smaller database. Small per-field
databases of mostly pure literals stay on Hyperscan's simplest, best-tested paths.

Case-insensitive globs are lower-cased here and matched against lower-cased values (Python's
``str.lower`` on both sides, exactly the plan's contract, non-ASCII included); ``cased`` globs
get databases of their own, scanned over the original text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vedette.detect.plan import ANY, ONE, AnyOf, DetectionItem, Glob, Regex, RulePlan

SEP = b"\xff"
"""Value delimiter in a rendered buffer: never part of UTF-8 text."""
CLOSE = b"\xff\x00"
"""What ends every buffer scanned with glob databases: the closing delimiter and a padding byte.

The Hyperscan build of the ``hyperscan`` wheel (Vectorscan 5.4) misses a literal match that ends
on the buffer's last byte when the database also holds a pattern with a ``[^\xff]*`` run: with
``\x24\xff`` (``*$``) and ``\x5cfoo[^\xff]*\xff`` in one database, ``\xffwin-7$\xff`` reports
nothing, and the same buffer with one more byte reports the match (tests/detect/test_hs_scanner).
No glob pattern can end on the padding: a match reaching it would have to begin on the padding
or on the closing delimiter (no element but ``\xff`` matches it) with its first element then
matching the padding byte, which only patterns starting (after any leading ``\xff``) with
``?`` or a NUL could; those end with ``[^\xff]*\xff`` (:func:`glob_expression`).
"""
CLOSE_REGEX = b"\xff\xff"
"""The same for regex databases, whose character classes may match ``\x00`` but never ``\xff``;
no regex pattern can match the two delimiters alone (patterns that can match nothing are left
to Python)."""

ANY_RUN = rb"[^\xff]*"
ONE_CHAR = rb"[^\x80-\xbf\xff][\x80-\xbf]*"
"""One UTF-8 encoded character: a lead byte and its continuation bytes."""

KEYWORDS = 0
"""Group number of keyword patterns (fields are numbered from 1)."""

FOLDED, CASED, REGEX = 0, 1, 2
"""Database kinds: lower-cased globs, case-sensitive globs, regexes over ASCII values."""

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def escape_bytes(data: bytes) -> bytes:
    """Escape raw bytes for a Hyperscan expression (every non-alphanumeric byte as ``\\xHH``)."""
    return b"".join(bytes([b]) if b in _PLAIN else b"\\x%02x" % b for b in data)


def encode_text(text: str) -> bytes:
    """UTF-8 bytes of ``text`` exactly as the buffer renderer encodes values."""
    return text.encode("utf-8", "surrogatepass")


def glob_expression(glob: Glob) -> bytes:
    """Pattern matching a ``\\xff``-delimited value exactly when ``glob`` matches the value."""
    tokens: list[str | object] = []
    for token in glob.tokens:
        if isinstance(token, str):
            if not token:
                continue
            text = token if glob.case_sensitive else token.lower()
            if tokens and isinstance(tokens[-1], str):
                tokens[-1] = tokens[-1] + text
            else:
                tokens.append(text)
        elif token is ANY and tokens and tokens[-1] is ANY:
            continue
        else:
            tokens.append(token)
    # A leading or trailing run of any characters needs no pattern: a literal cannot contain
    # the delimiter, so wherever it matches it is inside one value.
    head = tokens[0] is not ANY if tokens else True
    tail = tokens[-1] is not ANY if tokens else True
    body = tokens[(0 if head else 1) : (len(tokens) if tail else -1)]
    out = [rb"\xff"] if head else []
    for part in body:
        if isinstance(part, str):
            out.append(escape_bytes(encode_text(part)))
        elif part is ANY:
            out.append(ANY_RUN)
        else:
            out.append(ONE_CHAR)
    if tail:
        out.append(rb"\xff")
    elif body and (body[0] is ONE or (isinstance(body[0], str) and body[0][0] == "\0")):
        # "?*", "*?*", "<NUL>*"...: this could match the padding byte of CLOSE (alone, or after
        # the closing delimiter); ending on a delimiter keeps it inside its value.
        out.append(ANY_RUN + rb"\xff")
    expression = b"".join(out)
    # "*" alone (any value, even empty) still needs a non-empty pattern.
    return expression or rb"\xff"


@dataclass(slots=True)
class PatternSet:
    """Every pattern (global ids), the database each belongs to, and what a match makes true.

    A database is ``(group, kind)``: group :data:`KEYWORDS` or a field number; kind
    :data:`FOLDED`, :data:`CASED` or :data:`REGEX` (scanned over ASCII values only).
    """

    expressions: list[bytes] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    any_items: list[tuple[int, ...]] = field(default_factory=list)
    """Per pattern: items (``match_all=False``) that are true when it matches."""
    all_slots: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """Per pattern: ``(item_id, matcher_index)`` of ``match_all`` items it satisfies."""
    databases: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    """``(group, kind)`` -> ids of the patterns of that database."""
    regexes: dict[int, Regex] = field(default_factory=dict)
    """Regex pattern id -> the plan's regex (Python decides it on non-ASCII values)."""
    equals: dict[tuple[int, int], dict[str, tuple[int, ...]]] = field(default_factory=dict)
    """``(field, cased)`` -> whole (lower-cased unless cased) value -> pattern ids.

    Equality globs of a field are answered by one dictionary probe per value instead of a
    Hyperscan pattern: cheaper, and fields tested only for equality (``EventID``, ``Channel``,
    ``LogonType``...) then need no scan at all. Their ids have an empty expression.
    """
    _index: dict[tuple[int, int, bytes, int, Regex | None], int] = field(default_factory=dict)

    def add(
        self,
        database: tuple[int, int],
        expression: bytes,
        flags: int,
        item_id: int,
        matcher: int | None,
        equal: str | None = None,
        regex: Regex | None = None,
    ) -> None:
        """Register ``expression`` for an item (``matcher`` None) or one matcher of an item.

        ``equal`` (a whole value) files the pattern under :attr:`equals` instead.
        """
        # Two regexes may share a Hyperscan form (equal on ASCII) yet differ on other text, so a
        # regex is part of its pattern's identity.
        key = (*database, expression if equal is None else b"=" + encode_text(equal), flags, regex)
        pid = self._index.get(key)
        if pid is None:
            pid = len(self.expressions)
            self._index[key] = pid
            self.expressions.append(expression if equal is None else b"")
            self.flags.append(flags)
            self.any_items.append(())
            if regex is not None:
                self.regexes[pid] = regex
            if equal is None:
                self.databases.setdefault(database, []).append(pid)
            else:
                table = self.equals.setdefault(database, {})
                table[equal] = (*table.get(equal, ()), pid)
        if matcher is None:
            if item_id not in self.any_items[pid]:
                self.any_items[pid] = (*self.any_items[pid], item_id)
        else:
            slot = (item_id, matcher)
            if slot not in self.all_slots.get(pid, ()):
                self.all_slots[pid] = (*self.all_slots.get(pid, ()), slot)

    def __len__(self) -> int:
        return len(self.expressions)


@dataclass(slots=True)
class ItemPatterns:
    """The translation of a plan: field numbers, patterns, and what is covered."""

    fields: dict[str, int]
    """Lower-cased field name -> field number (from 1)."""
    spellings: dict[str, frozenset[str]]
    """Lower-cased field name -> the spellings items use (field lookup needs them on clashes)."""
    patterns: PatternSet
    covered: frozenset[int]
    need: dict[int, int]
    """``match_all`` items with several matchers -> number of matchers that must be true."""


RegexTranslator = Callable[[Regex], "tuple[bytes, int, bool] | None"]
"""Translates a regex into ``(expression, flags, cased)``, or None when it cannot."""


def translate_plan(plan: RulePlan, regex: RegexTranslator | None = None) -> ItemPatterns:
    """Translate every item of ``plan`` the scanner can decide exactly.

    ``regex`` optionally translates a :class:`Regex` (see :mod:`vedette.detect.hs_regex`); it
    returns None when it cannot guarantee Python's semantics, and the item is left to Python.
    """
    numbers: dict[str, int] = {}
    spellings: dict[str, set[str]] = {}
    patterns = PatternSet()
    covered: set[int] = set()
    need: dict[int, int] = {}
    for item in plan.items:
        translated = _translate_item(item, regex)
        if translated is None:
            continue
        if item.field is None:
            group = KEYWORDS
        else:
            name = item.field.lower()
            group = numbers.setdefault(name, len(numbers) + 1)
            spellings.setdefault(name, set()).add(item.field)
        all_linked = item.match_all and len(item.matchers) > 1
        if all_linked:
            need[item.item_id] = len(item.matchers)
        for index, expression, flags, kind, equal, source in translated:
            patterns.add(
                (group, kind),
                expression,
                flags,
                item.item_id,
                index if all_linked else None,
                equal if group != KEYWORDS else None,
                source,
            )
        covered.add(item.item_id)
    return ItemPatterns(
        fields=numbers,
        spellings={name: frozenset(s) for name, s in spellings.items()},
        patterns=patterns,
        covered=frozenset(covered),
        need=need,
    )


Translated = tuple[int, bytes, int, int, str | None, Regex | None]
"""``(matcher index, expression, flags, kind, whole value of an equality glob, regex)``."""


def _translate_item(item: DetectionItem, regex: RegexTranslator | None) -> list[Translated] | None:
    """What each alternative of each matcher of ``item`` becomes, or None when one cannot."""
    if not item.matchers:
        return None
    out: list[Translated] = []
    for index, matcher in enumerate(item.matchers):
        alternatives = matcher.alternatives if isinstance(matcher, AnyOf) else (matcher,)
        for alternative in alternatives:
            if isinstance(alternative, Glob):
                cased = alternative.case_sensitive
                literal = alternative.literal
                if literal is not None and not cased:
                    literal = literal.lower()
                kind = CASED if cased else FOLDED
                out.append((index, glob_expression(alternative), 0, kind, literal, None))
            elif isinstance(alternative, Regex) and regex is not None and item.field is not None:
                translated = regex(alternative)
                if translated is None:
                    return None
                expression, flags, _cased = translated
                out.append((index, expression, flags, REGEX, None, alternative))
            else:
                return None
    return out
