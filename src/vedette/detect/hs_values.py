"""What each field value makes true, remembered per ``(key, value)`` pair, learned in batches.

What a value makes true (its field's items) does not depend on the rest of its event, and logs
repeat the same images, parents, channels, users and event ids all day long. The memo maps each
pair exactly as an event holds it to the frozen set of items it makes true, so an event whose
pairs are all known costs a few C-level operations: ``map`` the memo over its pairs, ``all`` to
see that none is missing, one union. The pairs no event of the batch had before are learned
together, with one Hyperscan scan per database for all of them (the scanner's ``scan_texts``).
Only keys some item reads are looked up (a projection per key layout); keyword items are
decided apart (:mod:`vedette.detect.hs_keywords`).

Exactness, where Python's equality would blur values the plan tells apart:

- ``True == 1`` and ``False == 0`` (and ``1.0``), and they hash alike, so a bool can meet an
  integer's entry. That only matters for a key whose items answer ``"true"`` and ``"1"`` (or
  ``"false"`` and ``"0"``) differently, an ``EventID: 1`` for instance. Such a key is
  *hazardous*: its number entries carry :data:`HAZARD`, its bool values get entries of their own,
  and an event meeting a hazard swaps in the bool entries where its values are bools.
- Keys that differ only in case (``ProcessId`` and ``ProcessID`` in one event): the field lookup
  must pick one of them, which the per-event path does; unhashable values (lists, which are
  matched element by element) and other types go that way too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress
from operator import not_
from typing import Any

from vedette.detect.hs_buffer import CLASH_LAYOUTS, FieldResolver
from vedette.detect.hs_layouts import Layout, Pair, make_layout
from vedette.detect.plan import render_values
from vedette.events import Event

EVERY = -1
"""In every entry: keeps entries truthy, so ``all()`` spots a memo miss in C."""
HAZARD = -3
"""A 0/1 number of a key whose items tell ``1`` from ``true``: the event may hold a bool there."""
SLOW = -4
"""A value of a type the memo does not render: the event takes the per-event path."""
_MARKERS = frozenset((HAZARD, SLOW))
_EMPTY = frozenset((EVERY,))

ScanTexts = Callable[[list[tuple[str, str | None]]], list[list[int]]]
"""``(key, rendered value or None)`` list -> the true pattern ids of each (duplicates allowed)."""
EntryItems = Callable[[list[int]], frozenset[int]]
"""True pattern ids -> the items they make true."""

_UNRENDERED = object()


def _render(value: Any) -> Any:
    """The one string a scalar value is matched as, None for null, or :data:`_UNRENDERED`."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if value is None:
        return None
    if kind is bool or kind is float:
        return render_values(value)[0]
    return _UNRENDERED


def _binary(value: Any) -> bool:
    """Whether ``value`` is a non-text value equal to 0 or 1 (the ones bools collide with)."""
    return type(value) in (int, bool, float) and value in (0, 1)


class ValueMemo:
    """The ``(key, value) -> true items`` memo and the batch path of the Hyperscan scanner."""

    def __init__(
        self,
        scan_texts: ScanTexts,
        entry_items: EntryItems,
        resolver: FieldResolver,
        limit: int,
    ) -> None:
        self._scan_texts = scan_texts
        self._entry_items = entry_items
        self._resolver = resolver
        self._limit = limit
        self._values: dict[Pair, frozenset[int]] = {}
        self._bools: dict[Pair, frozenset[int]] = {}  # bool values of hazardous keys
        self._hazards: dict[str, bool] = {}
        self._hazard_keys: set[str] = set()
        self._layouts: dict[tuple[str, ...], Layout] = {}

    def clear(self) -> None:
        """Forget every value (the key-level knowledge stays: it does not depend on values)."""
        self._values.clear()
        self._bools.clear()

    def __len__(self) -> int:
        return len(self._values) + len(self._bools)

    def decide(
        self, events: Sequence[Event]
    ) -> tuple[list[set[int] | None], list[int], list[Layout | None]]:
        """True field items of each event, the positions left to the per-event path, and the
        layout of each event decided here."""
        if len(self) >= self._limit:
            self.clear()
        lookup = self._values.get
        layouts = self._layouts
        out: list[set[int] | None] = [None] * len(events)
        used: list[Layout | None] = [None] * len(events)
        pending: list[tuple[int, tuple[Pair, ...]]] = []
        slow: list[int] = []
        for position, event in enumerate(events):
            fields = event.fields
            key_order = tuple(fields)
            layout = layouts.get(key_order)
            if layout is None:
                layout = self._layout(key_order, fields)
            if layout.clash:
                slow.append(position)
                continue
            used[position] = layout
            pairs = tuple(zip(layout.read, layout.read_values(fields)))  # noqa: B905 (same length)
            try:
                seen = list(map(lookup, pairs))
            except TypeError:  # an unhashable value: a list, a nested object
                slow.append(position)
                continue
            if all(seen):
                true = self._union(fields, pairs, seen)  # type: ignore[arg-type]  # all(): no None
                if true is None:
                    slow.append(position)
                else:
                    out[position] = true
            else:
                pending.append((position, pairs))
        if pending:
            # Keyed with the bool flag: (k, True) and (k, 1) are one key of a plain set.
            missing: dict[tuple[Pair, bool], None] = {}
            for _, pairs in pending:
                for pair in compress(pairs, map(not_, map(lookup, pairs))):
                    missing[pair, type(pair[1]) is bool] = None
            self._learn([pair for pair, _ in missing])
            for position, pairs in pending:
                fields = events[position].fields
                seen = list(map(lookup, pairs))
                true = self._union(fields, pairs, seen)  # type: ignore[arg-type]
                if true is None:
                    slow.append(position)
                else:
                    out[position] = true
        return out, slow, used

    def _layout(self, key_order: tuple[str, ...], fields: dict[str, Any]) -> Layout:
        """The layout of an event with these keys (made from this event, then remembered).

        Only keys some item reads are looked up: timestamps, record numbers and GUIDs, unique
        to each event, would only fill the memo (keyword items read them, but keywords are
        decided apart).
        """
        layout = make_layout(fields, self._resolver.number)
        if len(self._layouts) >= CLASH_LAYOUTS:
            self._layouts.clear()
        self._layouts[key_order] = layout
        return layout

    # -- one event -----------------------------------------------------------------------------

    def _union(
        self, fields: dict[str, Any], pairs: tuple[Pair, ...], seen: list[frozenset[int]]
    ) -> set[int] | None:
        """The event's true items from the entries of its pairs; None: per-event path."""
        true = set().union(*seen)
        true.discard(EVERY)
        if _MARKERS.isdisjoint(true):
            return true
        if SLOW in true:
            return None
        return self._with_bools(fields, pairs, seen, true)

    def _with_bools(
        self,
        fields: dict[str, Any],
        pairs: tuple[Pair, ...],
        seen: list[frozenset[int]],
        true: set[int],
    ) -> set[int]:
        """``true`` again with the bool entries where the event's hazardous keys hold bools."""
        true.discard(HAZARD)
        bool_keys = [k for k in self._hazard_keys.intersection(fields) if type(fields[k]) is bool]
        if not bool_keys:
            return true
        entries = list(seen)
        for index, pair in enumerate(pairs):
            if pair[0] in bool_keys:
                entry = self._bools.get(pair)
                if entry is None:
                    self._learn([pair])
                    entry = self._bools[pair]
                entries[index] = entry
        true = set().union(*entries)
        true.discard(EVERY)
        true.discard(HAZARD)
        return true

    # -- learning ------------------------------------------------------------------------------

    def _learn(self, pairs: list[Pair]) -> None:
        """Remember what each of ``pairs`` makes true (one scan per database for them all)."""
        texts: list[tuple[str, str | None]] = []
        unrendered: set[int] = set()
        for index, (key, value) in enumerate(pairs):
            text = _render(value)
            if text is _UNRENDERED:
                unrendered.add(index)
                text = None
            texts.append((key, text))
        numbers_wanted: list[Pair] = []
        for index, (pair, pids) in enumerate(zip(pairs, self._scan_texts(texts), strict=True)):
            if index in unrendered:
                self._values[pair] = frozenset((EVERY, SLOW))
                continue
            key, value = pair
            hazard = _binary(value) and self._hazardous(key)
            own = hazard and type(value) is bool
            entry = self._entry_items(pids) | _EMPTY if pids else _EMPTY
            if not hazard:
                self._values[pair] = entry
            elif own:
                self._bools[pair] = entry
                # The shared slot of (k, True) and (k, 1) holds the number's entry, marked.
                if (key, int(value)) not in self._values:
                    numbers_wanted.append((key, int(value)))
            else:
                self._values[pair] = entry | {HAZARD}
        if numbers_wanted:
            self._learn(numbers_wanted)

    def _hazardous(self, key: str) -> bool:
        """Whether the items of ``key`` tell 1 from true and 0 from false."""
        hazard = self._hazards.get(key)
        if hazard is None:
            zero, false, one, true = (
                set(pids)
                for pids in self._scan_texts(
                    [(key, "0"), (key, "false"), (key, "1"), (key, "true")]
                )
            )
            hazard = self._hazards[key] = zero != false or one != true
            if hazard:
                self._hazard_keys.add(key)
        return hazard
