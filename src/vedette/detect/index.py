"""The pure-Python item scanner: decides every glob item with dictionary lookups.

Instead of testing each glob of each rule, the globs are filed per field under their shape:
equality in a dict keyed by the value, prefixes and suffixes in dicts keyed by the literal per
length, substrings in a list, and only the rest (``?``, inner ``*``) as regular expressions. One
pass over an event's fields then yields every true glob ("atom"); atoms make matcher slots true,
slots make items true (``any`` or, for ``|all`` items, every slot). Regex and the other kinds are
left to the engine's per-item closures. This is the reference :class:`ItemScanner`; the Hyperscan
scanner must agree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vedette.detect.matchers import glob_regex
from vedette.detect.plan import AnyOf, DetectionItem, Glob, RulePlan, render_values
from vedette.detect.scanner import SCANNERS
from vedette.events import Event


@dataclass(slots=True)
class _FieldIndex:
    """Globs on one field (or on every field, for keywords), with one case mode."""

    eq: dict[str, list[int]] = field(default_factory=dict)
    prefix: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    suffix: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    contains: dict[str, list[int]] = field(default_factory=dict)
    other: list[tuple[Callable[[str], object], int]] = field(default_factory=list)
    prefix_lengths: tuple[int, ...] = ()
    suffix_lengths: tuple[int, ...] = ()
    contains_items: tuple[tuple[str, list[int]], ...] = ()

    def add(self, glob: Glob, atom: int) -> None:
        shape = glob.shape()
        if shape is None:
            self.other.append((glob_regex(glob).fullmatch, atom))
            return
        kind, text = shape
        if kind == "eq":
            self.eq.setdefault(text, []).append(atom)
        elif kind == "prefix":
            self.prefix.setdefault(len(text), {}).setdefault(text, []).append(atom)
        elif kind == "suffix":
            self.suffix.setdefault(len(text), {}).setdefault(text, []).append(atom)
        else:
            self.contains.setdefault(text, []).append(atom)

    def freeze(self) -> None:
        self.prefix_lengths = tuple(sorted(self.prefix))
        self.suffix_lengths = tuple(sorted(self.suffix))
        self.contains_items = tuple(self.contains.items())

    def scan(self, s: str, out: set[int]) -> None:
        """Add to ``out`` the atoms true for string ``s`` (already lower-cased if caseless)."""
        hit = self.eq.get(s)
        if hit:
            out.update(hit)
        n = len(s)
        for length in self.prefix_lengths:
            if length > n:
                break
            hit = self.prefix[length].get(s[:length])
            if hit:
                out.update(hit)
        for length in self.suffix_lengths:
            if length > n:
                break
            hit = self.suffix[length].get(s[n - length :] if length else "")
            if hit:
                out.update(hit)
        for text, atoms in self.contains_items:
            if text in s:
                out.update(atoms)
        for match, atom in self.other:
            if match(s) is not None:
                out.add(atom)


class PythonScanner:
    """Reference :class:`~vedette.detect.scanner.ItemScanner` over every all-glob item."""

    def __init__(self, items: Sequence[DetectionItem]) -> None:
        self._caseless: dict[str | None, _FieldIndex] = {}
        self._cased: dict[str | None, _FieldIndex] = {}
        self._atom_slots: list[list[int]] = []
        self._slot_item: list[int] = []
        self._all_slots: dict[int, int] = {}  # item id -> number of slots, for |all items
        atom_ids: dict[tuple[str | None, Glob], int] = {}
        covered: set[int] = set()
        for item in items:
            globs_per_slot = [_globs(m) for m in item.matchers]
            if any(g is None for g in globs_per_slot):
                continue
            covered.add(item.item_id)
            name = item.field.lower() if item.field is not None else None
            if item.match_all:
                self._all_slots[item.item_id] = len(globs_per_slot)
            for globs in globs_per_slot:
                slot = len(self._slot_item)
                self._slot_item.append(item.item_id)
                for glob in globs or ():
                    key = (name, glob)
                    atom = atom_ids.get(key)
                    if atom is None:
                        atom = atom_ids[key] = len(self._atom_slots)
                        self._atom_slots.append([])
                        table = self._cased if glob.case_sensitive else self._caseless
                        table.setdefault(name, _FieldIndex()).add(glob, atom)
                    self._atom_slots[atom].append(slot)
        for table in (self._caseless, self._cased):
            for index in table.values():
                index.freeze()
        self._covered = frozenset(covered)
        self._keyword = self._caseless.get(None), self._cased.get(None)

    @property
    def covered(self) -> frozenset[int]:
        """Item ids decided here: every item whose matchers are all globs."""
        return self._covered

    def decide(self, events: Sequence[Event]) -> list[set[int]]:
        """True covered items per event."""
        return [self.decide_one(event.fields) for event in events]

    def decide_one(self, fields: dict[str, object]) -> set[int]:
        """True covered items of one event's fields."""
        atoms: set[int] = set()
        caseless, cased = self._caseless, self._cased
        kw_caseless, kw_cased = self._keyword
        seen: set[str] = set()
        for key, value in fields.items():
            name = key.lower()
            if name in seen:  # first of several keys equal but for case wins
                continue
            seen.add(name)
            lower_index = caseless.get(name)
            cased_index = cased.get(name)
            if lower_index is None and cased_index is None and not (kw_caseless or kw_cased):
                continue
            strings = [value] if isinstance(value, str) else render_values(value)
            for s in strings:
                low = s.lower()
                if lower_index is not None:
                    lower_index.scan(low, atoms)
                if cased_index is not None:
                    cased_index.scan(s, atoms)
                if kw_caseless is not None:
                    kw_caseless.scan(low, atoms)
                if kw_cased is not None:
                    kw_cased.scan(s, atoms)
        return self._items(atoms)

    def _items(self, atoms: set[int]) -> set[int]:
        true: set[int] = set()
        if not atoms:
            return true
        slots: set[int] = set()
        for atom in atoms:
            slots.update(self._atom_slots[atom])
        slot_item, all_slots = self._slot_item, self._all_slots
        counts: dict[int, int] = {}
        for slot in slots:
            item = slot_item[slot]
            need = all_slots.get(item)
            if need is None:
                true.add(item)
            else:
                got = counts.get(item, 0) + 1
                counts[item] = got
                if got == need:
                    true.add(item)
        return true


def _globs(matcher: object) -> list[Glob] | None:
    if isinstance(matcher, Glob):
        return [matcher]
    if isinstance(matcher, AnyOf):
        out: list[Glob] = []
        for alternative in matcher.alternatives:
            globs = _globs(alternative)
            if globs is None:
                return None
            out.extend(globs)
        return out
    return None


def build_python_scanner(plan: RulePlan, cache_dir: Path | None) -> PythonScanner:
    """Scanner factory registered as ``"python"``."""
    del cache_dir
    return PythonScanner(plan.items)


SCANNERS["python"] = build_python_scanner
