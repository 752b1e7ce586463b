"""Keyword items (field-less searches) without rendering every value of every event.

A keyword item is true when some value of the event matches one of its globs, so deciding it
exactly means rendering and scanning every value: timestamps, GUIDs and record numbers included,
new in each event. Yet SigmaHQ's Windows keyword rules (Mimikatz strings for every Windows
event, Exchange cmdlets, antivirus messages...) almost never fire. The prefilter answers "no
keyword item can be true" for almost every event with one C-level join of the event's text
values (a getter per key layout, :mod:`vedette.detect.hs_layouts`) and one Hyperscan scan for a
*necessary literal* of each keyword glob; only when one is found, or when the prefilter cannot
vouch for the event, does the scanner decide the keyword items exactly.

Why no match can be missed:

- a glob matches a value only if the value contains each of its literal tokens, lower-cased
  for a case-insensitive glob. ``str.lower`` maps character to character, ASCII to ASCII and
  other characters to non-ASCII ones, except two that the prefilter refuses to vouch for
  (events holding them are decided exactly): KELVIN SIGN (lower-cases to ``k``) and LATIN
  CAPITAL LETTER I WITH DOT ABOVE (to two characters). So an ASCII piece of a token found in
  the lower-cased value is found, ASCII-caselessly (Hyperscan's caseless flag), in the value;
- every text value is in the joined text, whole; the join character can only add false
  positives;
- lists of text (Zeek writes them) are joined in element by element, as the engine matches them;
- the values left out are checked to be integers, floats, bools or nulls (or lists of them),
  and every chosen piece holds a character no number renders as (digits, ``.``, ``e``, ``+``,
  ``-``, ``inf``, ``nan``) and is no part of ``true`` or ``false``: such values cannot contain
  it. Any other value (a mixed or nested list, say) makes the prefilter answer "maybe".

A keyword item with a glob without a usable piece (``*`` alone, only digits...) is listed in
:attr:`KeywordPrefilter.unusable`: the scanner decides keyword items exactly for the events of
the logsources whose rules use such an item (the prefilter serves all the others).
"""

from __future__ import annotations

import re
from typing import Any

import hyperscan

from vedette.detect.hs_layouts import Layout
from vedette.detect.hs_patterns import encode_text, escape_bytes
from vedette.detect.plan import AnyOf, DetectionItem, Glob, ValueMatcher

_NUMBER_PIECE = re.compile(r"[0-9.e+\-]+")
"""A piece that may lie inside a number's rendering (with the substrings of -inf and nan)."""
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
PAD = b"\x00"
"""One byte after the text: see :data:`vedette.detect.hs_patterns.CLOSE` (a Vectorscan miss)."""
_SKIPPED_TYPES = frozenset((int, float, bool, type(None)))
"""Values the prefilter need not scan (no chosen piece can be inside their rendering)."""


def necessary_token(glob: Glob) -> str | None:
    """The longest ASCII piece of a literal token of ``glob`` usable by the prefilter, or None
    when the glob has none (the prefilter cannot be used)."""
    pieces: list[str] = []
    for token in glob.tokens:
        if isinstance(token, str) and token:
            text = token if glob.case_sensitive else token.lower()
            pieces.extend(_NON_ASCII.split(text))
    usable = [
        piece
        for piece in pieces
        if not _NUMBER_PIECE.fullmatch(piece.lower())
        and all(piece.lower() not in word for word in ("-inf", "nan", "true", "false"))
    ]
    return max(usable, key=len) if usable else None


def _best_matcher(matchers: tuple[ValueMatcher, ...]) -> ValueMatcher:
    """The matcher of an all-of item whose weakest alternative has the longest literal."""

    def strength(matcher: ValueMatcher) -> int:
        alternatives = matcher.alternatives if isinstance(matcher, AnyOf) else (matcher,)
        tokens = [necessary_token(g) if isinstance(g, Glob) else None for g in alternatives]
        return min((len(t) if t is not None else -1) for t in tokens) if tokens else -1

    return max(matchers, key=strength)


class KeywordPrefilter:
    """The necessary pieces of every keyword item, and one small Hyperscan database per set of
    keyword items that apply together (a logsource's): a Windows event is not held up by the
    short pieces of Linux keyword rules (``-s``, ``:``)."""

    def __init__(self, items: list[DetectionItem]) -> None:
        self._pieces: dict[int, list[tuple[bytes, int]]] = {}
        unusable: set[int] = set()
        for item in items:
            pieces: list[tuple[bytes, int]] = []
            # An all-of item needs every matcher: the pieces of one of them are enough.
            matchers = [_best_matcher(item.matchers)] if item.match_all else item.matchers
            for matcher in matchers:
                alternatives = matcher.alternatives if isinstance(matcher, AnyOf) else (matcher,)
                for glob in alternatives:
                    token = necessary_token(glob) if isinstance(glob, Glob) else None
                    if token is None or not isinstance(glob, Glob):
                        unusable.add(item.item_id)
                        continue
                    caseless = 0 if glob.case_sensitive else hyperscan.HS_FLAG_CASELESS
                    pieces.append((escape_bytes(encode_text(token)), caseless))
            self._pieces[item.item_id] = pieces
        self.unusable = frozenset(unusable)
        """Keyword items with a glob the prefilter cannot vouch for: events of a logsource whose
        rules use one have their keyword items decided exactly."""
        self._databases: dict[frozenset[int], PieceDatabase | None] = {}

    def database_for(self, item_ids: frozenset[int]) -> PieceDatabase | None:
        """The prefilter of these keyword items (ids of other items are ignored); None when they
        have no piece at all."""
        key = item_ids.intersection(self._pieces)
        if key not in self._databases:
            pieces = sorted({p for i in key for p in self._pieces[i]})
            self._databases[key] = PieceDatabase(pieces) if pieces else None
        return self._databases[key]


class PieceDatabase:
    """One Hyperscan database of pieces, scanned over the text values of an event."""

    def __init__(self, pieces: list[tuple[bytes, int]]) -> None:
        self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._database.compile(
            expressions=[expression for expression, _ in pieces],
            ids=list(range(len(pieces))),
            elements=len(pieces),
            flags=[flags | hyperscan.HS_FLAG_SINGLEMATCH for _, flags in pieces],
        )

    def may_match(self, fields: dict[str, Any], layout: Layout) -> bool:
        """False only when none of the pieces is in a value of ``fields``, so that no keyword
        glob they stand for can match."""
        others = layout.others(fields)
        try:
            text = "\x00".join(layout.texts(fields))
        except TypeError:  # a value of the layout's text keys is no text in this event
            return True
        if not set(map(type, others)) <= _SKIPPED_TYPES:
            # lists (Zeek writes them: answers, TTLs...) are matched element by element
            parts = [text]
            for value in others:
                if type(value) is list and all(type(v) is str for v in value):
                    parts.extend(value)
                elif type(value) not in _SKIPPED_TYPES and not (
                    type(value) is list and set(map(type, value)) <= _SKIPPED_TYPES
                ):
                    return True  # a value of another type: decide exactly
            text = "\x00".join(parts)
        if not text.isascii() and ("\u212a" in text or "\u0130" in text):
            return True
        data = text.encode("utf-8", "surrogatepass") + PAD
        try:
            self._database.scan(data, match_event_handler=_stop)
        except hyperscan.ScanTerminated:  # a piece was found
            return True
        return False


def _stop(pid: int, start: int, end: int, flags: int, context: object) -> bool:
    """Match handler that ends the scan at the first piece found: one is enough."""
    return True
