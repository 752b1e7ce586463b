"""Which field database reads which key of an event.

Field lookup follows the plan contract: a rule field ``F`` reads ``fields[F]`` when that exact key
exists, otherwise the first key equal to it ignoring case. Databases are per lower-cased field
name, which is exact as long as an event has one key per lower-cased name (always, in practice).
When an event has several keys that differ only in case, the resolver works out which key each
spelling used by items would read; if they disagree it gives up on the event and the scanner
decides that event with the items' Python closures.
"""

from __future__ import annotations

from typing import Any

NO_FIELD = 0
"""Field number of keys no covered item names."""

CLASH_LAYOUTS = 4096
"""Distinct key layouts with a case clash remembered before the table starts afresh."""


class FieldResolver:
    """Maps an event's keys to field numbers (:data:`NO_FIELD` for keys no item reads)."""

    __slots__ = ("_clashes", "_known", "_numbers", "_seen", "_spellings", "_variants")

    def __init__(self, numbers: dict[str, int], spellings: dict[str, frozenset[str]]) -> None:
        self._numbers = dict(numbers)
        self._spellings = spellings
        self._known: dict[str, int] = {}
        self._seen: dict[str, str] = {}  # lower-cased name -> first raw spelling seen
        self._variants: set[str] = set()  # raw keys whose name was seen spelled otherwise
        # Event key layout (keys in order) -> its resolution: a clash's outcome depends only on
        # the event's keys and their order, and logs repeat a few layouts (one per provider and
        # event id), so each layout is worked out once instead of once per event.
        self._clashes: dict[tuple[str, ...], dict[str, int] | None] = {}

    def _learn(self, key: str) -> int:
        name = key.lower()
        number = self._numbers.get(name, NO_FIELD)
        first = self._seen.setdefault(name, key)
        if first != key and number != NO_FIELD:
            self._variants.update((first, key))
        self._known[key] = number
        return number

    def number(self, key: str) -> int:
        """Field number of ``key`` in an event where no other key differs from it only in case."""
        number = self._known.get(key)
        return self._learn(key) if number is None else number

    def numbers(self, fields: dict[str, Any]) -> dict[str, int] | None:
        """Key -> field number for this event, or None when a case clash is ambiguous."""
        if not fields.keys() <= self._known.keys():  # one C-level check in the common case
            for key in fields:
                if key not in self._known:
                    self._learn(key)
        if self._variants and not self._variants.isdisjoint(fields):
            layout = tuple(fields)
            try:
                return self._clashes[layout]
            except KeyError:
                pass
            if len(self._clashes) >= CLASH_LAYOUTS:
                self._clashes.clear()
            resolved = self._clashes[layout] = self._resolve_clash(fields)
            return resolved
        return self._known

    def _resolve_clash(self, fields: dict[str, Any]) -> dict[str, int] | None:
        groups: dict[str, list[str]] = {}
        for key in fields:
            groups.setdefault(key.lower(), []).append(key)
        # Only the event's own keys: the result is remembered for every event of this layout.
        override = {key: self._known[key] for key in fields}
        for name, keys in groups.items():
            number = self._numbers.get(name, NO_FIELD)
            if len(keys) < 2 or number == NO_FIELD:
                continue
            chosen = {s if s in fields else keys[0] for s in self._spellings.get(name, ())}
            if len(chosen) > 1:
                return None
            read = chosen.pop() if chosen else keys[0]
            for key in keys:
                # The others are still values of the event for keyword items.
                override[key] = number if key == read else NO_FIELD
        return override
