"""What each field value makes true, remembered per key and value.

What a value makes true (its field's items) does not depend on the rest of its event, and logs
repeat the same images, parents, channels, users and event ids all day long. Each key has a
memo (:class:`KeyMemo`, a dict from value to the frozen set of items the value makes true); a
key layout (:mod:`vedette.detect.hs_layouts`) lists the memos of the keys rules read, so an
event costs a few C-level operations: ``map(getitem, memos, values)`` and one union. A value
met for the first time is learned inside that ``map``, by the memo's ``__missing__`` (one
Hyperscan scan of the value per database of its field). Keyword items are decided apart
(:mod:`vedette.detect.hs_keywords`).

Exactness, where Python's equality would blur values the plan tells apart:

- ``True == 1`` and ``False == 0`` (and ``1.0``), and they hash alike, so a bool meets an
  integer's entry. That only matters for a key whose items answer ``"true"`` and ``"1"`` (or
  ``"false"`` and ``"0"``) differently, an ``EventID: 1`` for instance. Such a key is
  *hazardous*: its entry for a 0/1 value is the number's, marked :data:`HAZARD`, the bools have
  entries of their own, and an event meeting the mark swaps them in where its values are bools.
- Keys that differ only in case (``ProcessId`` and ``ProcessID`` in one event): the field lookup
  must pick one, which the per-event path does; unhashable values (lists, matched element by
  element) and values of other types (:data:`SLOW`) go that way too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import getitem
from typing import Any

from vedette.detect.hs_buffer import CLASH_LAYOUTS, FieldResolver
from vedette.detect.hs_layouts import Layout, Route, make_layout
from vedette.detect.plan import render_values
from vedette.events import Event, LogSource

HAZARD = -3
"""A 0/1 number of a key whose items tell ``1`` from ``true``: the event may hold a bool there."""
SLOW = -4
"""A value of a type the memo does not render: the event takes the per-event path."""
_MARKERS = frozenset((HAZARD, SLOW))
TEXT_LIMIT = 32 * 1024 * 1024
"""Characters of text values remembered before the memo starts afresh (with its count limit,
this bounds the memory the memo holds alive: about 32 to 128 MiB of strings at most)."""
LONGEST_REMEMBERED = 4096
"""Longer text values (script blocks, long command lines) are scanned each time, not kept: they
rarely repeat, and the memo would hold them alive."""
_EMPTY: frozenset[int] = frozenset()
_SLOW_ENTRY = frozenset((SLOW,))

KnownLayout = tuple[Layout, "tuple[KeyMemo, ...]", Route]
"""A key layout, the memos of its read keys, and the route of the events' logsource."""
_SourceLayouts = tuple[LogSource, Route, dict[tuple[str, ...], KnownLayout]]
"""A logsource, its route, and its key layouts."""
ScanText = Callable[[str, str], list[int]]
"""``(key, rendered value)`` -> the true pattern ids of the value's field (duplicates allowed)."""
EntryItems = Callable[[list[int]], frozenset[int]]
"""True pattern ids -> the items they make true."""


def _render(value: Any) -> str | None:
    """The one string a scalar value is matched as; None for null; raises TypeError else."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]  # checked just above
    if kind is int:
        return str(value)
    if value is None:
        return None
    if kind is bool or kind is float:
        return render_values(value)[0]
    raise TypeError(kind)


def _binary(value: Any) -> bool:
    """Whether ``value`` is a non-text value equal to 0 or 1 (the ones bools collide with)."""
    return type(value) in (int, bool, float) and value in (0, 1)


class KeyMemo(dict[Any, frozenset[int]]):
    """Value -> entry, for one key; a value not seen yet is learned on lookup."""

    __slots__ = ("bools", "key", "learn")

    def __init__(self, key: str, learn: Callable[[KeyMemo, Any], frozenset[int]]) -> None:
        super().__init__()
        self.key = key
        self.learn = learn
        self.bools: dict[Any, frozenset[int]] = {}
        """Entries of bool values, when the key is hazardous."""

    def __missing__(self, value: Any) -> frozenset[int]:
        return self.learn(self, value)


class ValueMemo:
    """The per-key memos and the per-layout reading of events of the Hyperscan scanner."""

    def __init__(
        self,
        scan_text: ScanText,
        entry_items: EntryItems,
        resolver: FieldResolver,
        limit: int,
        route_of: Callable[[LogSource], Route],
    ) -> None:
        self._scan_text = scan_text
        self._entry_items = entry_items
        self._resolver = resolver
        self._limit = limit
        self._route_of = route_of
        # id(logsource) -> (that logsource, its route, its layouts): the identity
        # check makes a reused id harmless, and hashing a LogSource per event costs more.
        self._sources: dict[int, _SourceLayouts] = {}
        self._learned = 0
        self._learned_text = 0
        self._memos: dict[str, KeyMemo] = {}
        self._hazards: dict[str, bool] = {}

    def clear(self) -> None:
        """Forget every value (what is known of keys stays: it does not depend on values)."""
        for memo in self._memos.values():
            memo.clear()
            memo.bools.clear()
        self._learned = 0
        self._learned_text = 0

    def __len__(self) -> int:
        return self._learned

    def decide(
        self, events: Sequence[Event]
    ) -> tuple[list[set[int] | None], list[int], list[KnownLayout | None]]:
        """True field items of each event, the positions left to the per-event path, and the
        layout of each event (None for case clashes)."""
        if self._learned >= self._limit or self._learned_text >= TEXT_LIMIT:
            self.clear()
        sources = self._sources
        out: list[set[int] | None] = [None] * len(events)
        used: list[KnownLayout | None] = [None] * len(events)
        slow: list[int] = []
        markers = _MARKERS
        for position, event in enumerate(events):
            fields = event.fields
            source = sources.get(id(event.logsource))
            if source is None or source[0] is not event.logsource:
                source = self._source(event.logsource)
            key_order = tuple(fields)
            known = source[2].get(key_order)
            if known is None:
                known = self._layout(source, key_order, fields)
            layout, memos, _ = known
            if layout.clash:
                slow.append(position)
                continue
            try:
                entries = list(map(getitem, memos, layout.read_values(fields)))
            except TypeError:  # an unhashable value (a list): the per-event path
                slow.append(position)
                used[position] = known
                continue
            true = set().union(*entries)
            if not markers.isdisjoint(true):
                if SLOW in true:
                    slow.append(position)
                    continue
                true = self._with_bools(fields, layout, memos, entries)
            out[position] = true
            used[position] = known
        return out, slow, used

    def _source(self, logsource: LogSource) -> _SourceLayouts:
        """What is known of the events of ``logsource``: its route and key layouts."""
        if len(self._sources) >= CLASH_LAYOUTS:
            self._sources.clear()
        source = self._sources[id(logsource)] = (logsource, self._route_of(logsource), {})
        return source

    def _layout(
        self, source: _SourceLayouts, key_order: tuple[str, ...], fields: dict[str, Any]
    ) -> KnownLayout:
        """The layout of events of a logsource with these keys in this order (remembered).

        Only keys the logsource's rules read are looked up: timestamps, record numbers and
        GUIDs, unique to each event, would only fill the memo (keyword items read them, but
        keywords are decided apart), and a Security 4624 need not learn command lines.
        """
        route = source[1]
        number = self._resolver.number
        layout = make_layout(fields, lambda key: number(key) if route.read[number(key)] else 0)
        memos = tuple(self.memo(key) for key in layout.read)
        layouts = source[2]
        if len(layouts) >= CLASH_LAYOUTS:
            layouts.clear()
        known = layouts[key_order] = (layout, memos, route)
        return known

    def memo(self, key: str) -> KeyMemo:
        """The memo of ``key`` (a lookup of a value not seen yet learns it)."""
        memo = self._memos.get(key)
        if memo is None:
            memo = self._memos[key] = KeyMemo(key, self._learn)
        return memo

    def _with_bools(
        self,
        fields: dict[str, Any],
        layout: Layout,
        memos: tuple[KeyMemo, ...],
        entries: list[frozenset[int]],
    ) -> set[int]:
        """The union again, with the bool entries where the event's hazardous keys hold bools."""
        for index, (key, memo) in enumerate(zip(layout.read, memos, strict=True)):
            value = fields[key]
            if type(value) is bool and HAZARD in entries[index]:
                entry = memo.bools.get(value)
                if entry is None:
                    entry = memo.bools[value] = self._entry(key, value)
                entries[index] = entry
        true = set().union(*entries)
        true.discard(HAZARD)
        return true

    # -- learning ------------------------------------------------------------------------------

    def _learn(self, memo: KeyMemo, value: Any) -> frozenset[int]:
        """Learn, remember and return the entry of ``value`` for ``memo``'s key."""
        key = memo.key
        try:
            entry = self._entry(key, value)
        except TypeError:  # a type the memo does not render
            entry = _SLOW_ENTRY
        if _binary(value) and self._hazardous(key):
            if type(value) is bool:
                # The shared slot of (True, 1) holds the number's entry, marked.
                memo.bools[value] = entry
                entry = self._entry(key, int(value))
            entry = entry | {HAZARD}
        if type(value) is not str:
            memo[value] = entry
            self._learned += 1
        elif len(value) <= LONGEST_REMEMBERED:
            memo[value] = entry
            self._learned += 1
            self._learned_text += len(value)
        return entry

    def _entry(self, key: str, value: Any) -> frozenset[int]:
        text = _render(value)
        if text is None:
            return _EMPTY
        pids = self._scan_text(key, text)
        return self._entry_items(pids) if pids else _EMPTY

    def _hazardous(self, key: str) -> bool:
        """Whether the items of ``key`` tell 1 from true and 0 from false."""
        hazard = self._hazards.get(key)
        if hazard is None:
            zero, false, one, true = (
                set(self._scan_text(key, text)) for text in ("0", "false", "1", "true")
            )
            hazard = self._hazards[key] = zero != false or one != true
        return hazard
