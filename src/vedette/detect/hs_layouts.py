"""Key layouts: what the scanner reads of events whose keys come in one order.

Logs repeat a handful of key layouts (one per provider and event id), so the work of sorting an
event's keys (which ones rules read, whether two differ only in case, which hold text for the
keyword prefilter) is done once per layout and applied to every event with C-level getters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vedette.detect.hs_keywords import PieceDatabase

Pair = tuple[str, Any]
"""A ``(key, value)`` item of an event's fields."""
Getter = Callable[[dict[str, Any]], tuple[Any, ...]]
"""An event's fields -> the values of some keys, in order."""


def values_getter(keys: tuple[str, ...]) -> Getter:
    """A C-level getter of the values of ``keys`` (always a tuple, whatever their number)."""
    if len(keys) > 1:
        return itemgetter(*keys)
    if keys:
        (key,) = keys
        return lambda fields: (fields[key],)
    return lambda fields: ()


@dataclass(slots=True, frozen=True)
class Route:
    """What the rules of one event logsource read."""

    read: Sequence[bool]
    """Per field number: whether a covered item of these rules reads it."""
    keywords: bool
    """Whether these rules have covered keyword items."""
    exact_keywords: bool
    """Whether those are decided exactly for every event (the prefilter cannot vouch for some)."""
    pieces: PieceDatabase | None
    """The keyword prefilter of these rules (None when there is nothing it can do)."""


@dataclass(slots=True, frozen=True)
class Layout:
    """What to read of an event with these keys in this order."""

    read: tuple[str, ...]
    """Keys some item reads (their pairs are what the value memo looks up)."""
    clash: bool
    """Two read keys differ only in case: the field lookup must choose, per event."""
    read_values: Getter
    texts: Getter
    """Values that were text in the event that made the layout (the keyword prefilter scans)."""
    others: Getter
    """The other values (the prefilter checks their types: it may skip numbers, bools, nulls)."""

    def pairs(self, fields: dict[str, Any]) -> tuple[Pair, ...]:
        """The event's read pairs."""
        return tuple(zip(self.read, self.read_values(fields), strict=True))


def make_layout(fields: dict[str, Any], number: Callable[[str], int]) -> Layout:
    """The layout of ``fields``' keys; ``number`` gives a key's field number (0: not read)."""
    read = tuple(key for key in fields if number(key))
    numbers = [number(key) for key in read]
    texts = tuple(key for key, value in fields.items() if type(value) is str)
    others = tuple(key for key, value in fields.items() if type(value) is not str)
    return Layout(
        read=read,
        clash=len(numbers) != len(set(numbers)),
        read_values=values_getter(read),
        texts=values_getter(texts),
        others=values_getter(others),
    )
