"""The pure-Python item scanner: decides every glob item with dictionary lookups.

Instead of testing each glob of each rule, the globs are filed per field under their shape:
equality in a dict keyed by the value, prefixes and suffixes in dicts keyed by the literal per
length, substrings in buckets keyed by one of their three-character pieces (so a value only
meets the substrings that share a trigram with it), and only the rest (``?``, inner ``*``) as
regular expressions. One pass over an event's fields yields every true glob ("atom"); atoms make
matcher slots true, slots make items true (``any`` or, for ``|all`` items, every slot).

Tables are built per event logsource, from the items of the rules that logsource meets, so a
Sysmon process event never looks at the globs of Linux or cloud rules. Regex and the other kinds
are left to the engine's per-item closures. This is the reference
:class:`~vedette.detect.scanner.ItemScanner`; the Hyperscan scanner must agree with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vedette.detect.matchers import EventView, ItemTest, glob_regex, item_test
from vedette.detect.plan import AnyOf, DetectionItem, Glob, RulePlan, render_values
from vedette.detect.scanner import SCANNERS
from vedette.events import Event, LogSource

GRAM = 3
"""Length of the substring pieces that bucket ``contains`` literals."""

DIRECT_RATIO = 4
"""Test literals one by one when a text is longer than this many times their number."""


Verifier = Callable[[str], object]
_Entry = tuple[str, list[int], Verifier | None]
"""A bucket entry: the literal, its atoms, and a full-match test when the literal only
prefilters a glob of another shape (inner wildcards, ``?``)."""


@dataclass(slots=True)
class _FieldIndex:
    """Globs on one field (or on every field, for keywords), with one case mode."""

    eq: dict[str, list[int]] = field(default_factory=dict)
    prefix: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    suffix: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    contains: dict[str, list[int]] = field(default_factory=dict)
    complex: list[tuple[str, Verifier, int]] = field(default_factory=list)
    other: list[tuple[Verifier, int]] = field(default_factory=list)
    """Globs without any literal (``?``, ``?*?``): full-match tests, one by one."""
    everything: list[int] = field(default_factory=list)
    """Atoms true for any value at all (``*``)."""
    prefix_lengths: tuple[int, ...] = ()
    suffix_lengths: tuple[int, ...] = ()
    levels: tuple[tuple[int, dict[str, tuple[_Entry, ...]]], ...] = ()
    """(gram length, gram -> entries): each literal filed under one of its grams (its rarest
    trigram, or itself when shorter), so a value only meets the literals sharing a gram."""
    flat: tuple[tuple[_Entry, ...], ...] = ()
    """Every entry of each level, for texts long enough that testing each literal is cheaper."""

    def add(self, glob: Glob, atom: int) -> None:
        shape = glob.shape()
        if shape is None:
            literals = [t for t in glob.tokens if isinstance(t, str)]
            verify = glob_regex(glob).fullmatch
            if literals:
                text = max(literals, key=len)
                self.complex.append((text if glob.case_sensitive else text.lower(), verify, atom))
            else:
                self.other.append((verify, atom))
            return
        kind, text = shape
        if kind == "eq":
            self.eq.setdefault(text, []).append(atom)
        elif kind == "prefix":
            self.prefix.setdefault(len(text), {}).setdefault(text, []).append(atom)
        elif kind == "suffix":
            self.suffix.setdefault(len(text), {}).setdefault(text, []).append(atom)
        elif text:
            self.contains.setdefault(text, []).append(atom)
        else:
            self.everything.append(atom)

    def freeze(self) -> None:
        self.prefix_lengths = tuple(sorted(self.prefix))
        self.suffix_lengths = tuple(sorted(self.suffix))
        entries: list[_Entry] = [(text, atoms, None) for text, atoms in self.contains.items()]
        entries += [(text, [atom], verify) for text, verify, atom in self.complex]
        grams: Counter[str] = Counter()
        for text, _atoms, _verify in entries:
            grams.update({text[i : i + GRAM] for i in range(len(text) - GRAM + 1)})
        levels: dict[int, dict[str, list[_Entry]]] = {}
        for entry in entries:
            text = entry[0]
            if len(text) < GRAM:
                levels.setdefault(len(text), {}).setdefault(text, []).append(entry)
                continue
            pieces = {text[i : i + GRAM] for i in range(len(text) - GRAM + 1)}
            anchor = min(pieces, key=lambda g: (grams[g], g))
            levels.setdefault(GRAM, {}).setdefault(anchor, []).append(entry)
        self.levels = tuple(
            (length, {g: tuple(group) for g, group in buckets.items()})
            for length, buckets in sorted(levels.items())
        )
        self.flat = tuple(
            tuple(entry for group in buckets.values() for entry in group)
            for _length, buckets in self.levels
        )

    def scan(self, s: str, out: set[int]) -> None:
        """Add to ``out`` the atoms true for string ``s`` (already lower-cased if caseless)."""
        self.scan_shapes(s, out)
        self.scan_substrings(s, (s,), out)

    @property
    def has_shapes(self) -> bool:
        """True when some glob is an equality, prefix or suffix test."""
        return bool(self.eq or self.prefix or self.suffix)

    def scan_shapes(self, s: str, out: set[int]) -> None:
        """Equality, prefix and suffix globs over one value."""
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

    def scan_substrings(self, text: str, values: Sequence[str], out: set[int]) -> None:
        """Substring, complex and match-anything globs over ``text``.

        ``text`` is one value, or (for keyword searches) every value of the event joined by
        :data:`SEPARATOR`, which no literal contains: a literal found in the joined text is in one
        value, and a complex glob is then verified value by value.
        """
        n = len(text)
        for (length, buckets), flat in zip(self.levels, self.flat, strict=True):
            if length > n:
                break
            if length > 1 and len(flat) * DIRECT_RATIO < n:
                # Few literals, long text: testing each literal beats cutting the text in grams.
                for literal, atoms, verify in flat:
                    if literal in text and (verify is None or any(verify(v) for v in values)):
                        out.update(atoms)
                continue
            if length == 1:
                grams = set(text)
            else:
                grams = {text[i : i + length] for i in range(n - length + 1)}
            for gram in buckets.keys() & grams:
                for literal, atoms, verify in buckets[gram]:
                    if length != len(literal) and literal not in text:
                        continue
                    if verify is None or any(verify(v) for v in values):
                        out.update(atoms)
        if self.everything and values:
            out.update(self.everything)
        for match, atom in self.other:
            if any(match(v) is not None for v in values):
                out.add(atom)


SEPARATOR = "\uffff"
"""Joins an event's values for one keyword scan (a Unicode noncharacter: in no rule literal)."""


class GlobTables:
    """The indexes of one set of all-glob items, and the atom -> slot -> item mapping."""

    __slots__ = (
        "all_slots",
        "atom_slots",
        "cased",
        "caseless",
        "field_items",
        "item_tests",
        "keyword",
        "slot_item",
    )

    def __init__(self, items: Iterable[DetectionItem]) -> None:
        items = list(items)
        self.field_items: dict[str, list[DetectionItem]] = {}
        for item in items:
            if item.field is not None:
                self.field_items.setdefault(item.field.lower(), []).append(item)
        self.item_tests: dict[int, ItemTest] = {}  # built on case clashes, item by item
        self.caseless: dict[str | None, _FieldIndex] = {}
        self.cased: dict[str | None, _FieldIndex] = {}
        self.atom_slots: list[list[int]] = []
        self.slot_item: list[int] = []
        self.all_slots: dict[int, int] = {}  # item id -> number of slots, for |all items
        atom_ids: dict[tuple[str | None, Glob], int] = {}
        for item in items:
            globs_per_slot = [item_globs(m) or [] for m in item.matchers]
            name = item.field.lower() if item.field is not None else None
            if item.match_all:
                self.all_slots[item.item_id] = len(globs_per_slot)
            for globs in globs_per_slot:
                slot = len(self.slot_item)
                self.slot_item.append(item.item_id)
                for glob in globs:
                    key = (name, glob)
                    atom = atom_ids.get(key)
                    if atom is None:
                        atom = atom_ids[key] = len(self.atom_slots)
                        self.atom_slots.append([])
                        table = self.cased if glob.case_sensitive else self.caseless
                        table.setdefault(name, _FieldIndex()).add(glob, atom)
                    self.atom_slots[atom].append(slot)
        for table in (self.caseless, self.cased):
            for index in table.values():
                index.freeze()
        self.keyword = self.caseless.get(None), self.cased.get(None)

    def decide(self, fields: dict[str, object]) -> set[int]:
        """True items among this table's items for one event's fields."""
        atoms: set[int] = set()
        caseless, cased = self.caseless, self.cased
        kw_caseless, kw_cased = self.keyword
        keyword = kw_caseless is not None or kw_cased is not None
        kw_lower: list[str] = []
        kw_raw: list[str] = []
        seen: set[str] = set()
        clashes: list[str] = []
        for key, value in fields.items():
            name = key.lower()
            if name in seen:
                # Keys equal but for case: which value a field reads depends on the spelling
                # (see the plan); the items of that field are decided by closures below.
                clashes.append(name)
                lower_index = cased_index = None
            else:
                seen.add(name)
                lower_index = caseless.get(name)
                cased_index = cased.get(name)
            if lower_index is None and cased_index is None and not keyword:
                continue
            strings = [value] if isinstance(value, str) else render_values(value)
            for s in strings:
                low = s.lower()
                if lower_index is not None:
                    lower_index.scan(low, atoms)
                if cased_index is not None:
                    cased_index.scan(s, atoms)
                if keyword:
                    kw_lower.append(low)
                    kw_raw.append(s)
        for index, strings in ((kw_caseless, kw_lower), (kw_cased, kw_raw)):
            if index is None or not strings:
                continue
            if index.has_shapes:  # keyword globs are contains-globs, but the plan allows any
                for s in strings:
                    index.scan_shapes(s, atoms)
            index.scan_substrings(SEPARATOR.join(strings), strings, atoms)
        true = self.items(atoms)
        if clashes:
            self._resolve_clashes(fields, clashes, true)
        return true

    def _resolve_clashes(self, fields: dict[str, object], names: list[str], true: set[int]) -> None:
        """Decide the items of fields whose key appears in several cases, one closure each."""
        view = EventView(fields)
        tests = self.item_tests
        for name in names:
            for item in self.field_items.get(name, ()):
                test = tests.get(item.item_id)
                if test is None:
                    test = tests[item.item_id] = item_test(item)
                if test(view):
                    true.add(item.item_id)
                else:
                    true.discard(item.item_id)

    def items(self, atoms: set[int]) -> set[int]:
        """True items given the true atoms."""
        true: set[int] = set()
        if not atoms:
            return true
        slots: set[int] = set()
        for atom in atoms:
            slots.update(self.atom_slots[atom])
        slot_item, all_slots = self.slot_item, self.all_slots
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


class PythonScanner:
    """Reference :class:`~vedette.detect.scanner.ItemScanner` over every all-glob item."""

    def __init__(self, plan: RulePlan) -> None:
        self._plan = plan
        self._covered = frozenset(item.item_id for item in plan.items if _indexable(item))
        self._tables: dict[LogSource, GlobTables] = {}

    @property
    def covered(self) -> frozenset[int]:
        """Item ids decided here: every item whose matchers are all globs."""
        return self._covered

    def decide(self, events: Sequence[Event]) -> list[set[int]]:
        """True covered items per event (items of rules its logsource meets)."""
        tables = self._tables
        out: list[set[int]] = []
        for event in events:
            table = tables.get(event.logsource)
            if table is None:
                table = self._build(event.logsource)
            out.append(table.decide(event.fields))
        return out

    def _build(self, logsource: LogSource) -> GlobTables:
        wanted = self._plan.items_for(logsource)
        items = self._plan.items
        table = GlobTables(items[i] for i in sorted(wanted & self._covered))
        self._tables[logsource] = table
        return table


def _indexable(item: DetectionItem) -> bool:
    globs = [item_globs(m) for m in item.matchers]
    if any(g is None for g in globs):
        return False
    if item.field is None:  # keyword literals must not contain the joining separator
        for group in globs:
            for glob in group or ():
                if any(isinstance(t, str) and SEPARATOR in t for t in glob.tokens):
                    return False
    return True


def item_globs(matcher: object) -> list[Glob] | None:
    """The globs of a matcher made only of globs (a Glob, or AnyOf of them), else None."""
    if isinstance(matcher, Glob):
        return [matcher]
    if isinstance(matcher, AnyOf):
        out: list[Glob] = []
        for alternative in matcher.alternatives:
            globs = item_globs(alternative)
            if globs is None:
                return None
            out.extend(globs)
        return out
    return None


def build_python_scanner(
    plan: RulePlan, cache_dir: Path | None, plan_key: str | None = None
) -> PythonScanner:
    """Scanner factory registered as ``"python"`` (it keeps nothing in the cache)."""
    del cache_dir, plan_key
    return PythonScanner(plan)


SCANNERS["python"] = build_python_scanner
