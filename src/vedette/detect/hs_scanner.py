"""Hyperscan item scanner: decides detection items with Hyperscan scans of field values.

Every glob of every covered item is one pattern of a small block-mode database per field (and
one for keyword items), anchored on the value's ends (:mod:`vedette.detect.hs_patterns`); a
match *is* the truth of that glob.

Events go through the value memo (:mod:`vedette.detect.hs_values`): per key, the items each
value makes true are remembered, so a value is scanned once, when first met; keyword items go
through a prefilter (:mod:`vedette.detect.hs_keywords`). The events the memo cannot answer
exactly (keys that differ only in case, list values) take the per-event path,
:meth:`HyperscanScanner._decide_each`.

Importing this module registers the ``"hyperscan"`` scanner; it raises ``ModuleNotFoundError``
(name ``hyperscan``) when the native package is missing, and the engine falls back to Python.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hyperscan

from vedette.detect import cache
from vedette.detect.hs_buffer import FieldResolver
from vedette.detect.hs_databases import FORMAT_VERSION, load_databases, unbundle
from vedette.detect.hs_keywords import KeywordPrefilter
from vedette.detect.hs_layouts import Layout, Route
from vedette.detect.hs_patterns import (
    CASED,
    CLOSE,
    CLOSE_REGEX,
    FOLDED,
    KEYWORDS,
    REGEX,
    ItemPatterns,
    translate_plan,
)
from vedette.detect.hs_regex import translate_regex, unchecked_regex
from vedette.detect.hs_values import (
    HAZARD,
    LONGEST_REMEMBERED,
    SLOW,
    KeyMemo,
    KnownLayout,
    ValueMemo,
)
from vedette.detect.matchers import EventView, ItemTest, item_test
from vedette.detect.plan import Regex, RulePlan, RuleRouter, render_values
from vedette.detect.scanner import SCANNERS, ItemScanner
from vedette.detect.unicode_regex import unicode_search
from vedette.events import Event, LogSource

"""Per logsource: fields read case-insensitively, fields read cased, either, keywords,
keywords to decide exactly for every event (the prefilter cannot vouch for some of them), and
the prefilter of its keyword items."""

_SCALARS = frozenset((str, int))
"""Value types the per-event path takes from the value memo (bools and floats are rare)."""
_MEMO_MARKS = frozenset((HAZARD, SLOW))
MEMO_LIMIT = 200_000
"""Field values remembered with their true patterns before the memo starts afresh."""


class HyperscanScanner:
    """:class:`~vedette.detect.scanner.ItemScanner` backed by Hyperscan databases."""

    def __init__(
        self, plan: RulePlan, cache_dir: Path | None = None, plan_key: str | None = None
    ) -> None:
        self._plan = plan
        self._cache_dir = cache_dir
        self._bundle = b""
        # The translation of a plan takes longer than loading everything else from the cache
        # (0.7 of 1.2 s for the Windows corpus), so it is cached too: under the fingerprint of
        # what the plan was compiled from when the engine knows it, else a digest of the plan.
        key = _plan_key(plan, plan_key) if cache_dir is not None else None
        cached = cache.load(cache_dir, key, kind="hs-items") if cache_dir and key else None
        if isinstance(cached, ItemPatterns):
            self._items = cached
            self._setup()
            return
        # Regexes are translated without test-compiling each one: a cached bundle proves they
        # compile; on a cold start a failing database means one does not, and the plan is
        # translated again with every regex checked alone.
        self._items = translate_plan(plan, unchecked_regex)
        try:
            self._setup()
        except hyperscan.error:
            self._items = translate_plan(plan, translate_regex)
            self._setup()
        if cache_dir is not None and key is not None:
            cache.store(cache_dir, key, self._items, kind="hs-items")

    def _setup(self) -> None:
        items = self._items
        if self._bundle:
            databases = unbundle(self._bundle)
        else:
            databases, self._bundle = load_databases(items.patterns, self._cache_dir)
        size = len(items.fields) + 1
        self._folded: list[Any] = [None] * size
        self._cased: list[Any] = [None] * size
        # Keyword patterns are one database over all values at once, never a field's database
        # (field number 0 is also "no field": keys no item reads).
        self._keyword_dbs = (
            databases.pop((KEYWORDS, FOLDED), None),
            databases.pop((KEYWORDS, CASED), None),
        )
        self._regex: list[Any] = [None] * size
        by_kind = {FOLDED: self._folded, CASED: self._cased, REGEX: self._regex}
        for (group, kind), database in databases.items():
            by_kind[kind][group] = database
        # Non-ASCII values meet a field's regexes through Python's own ``re`` (see hs_regex).
        self._regex_py: list[list[tuple[Callable[[str], object], int]] | None] = [None] * size
        for (group, kind), pids in items.patterns.databases.items():
            if kind == REGEX:
                self._regex_py[group] = [
                    (_python_search(items.patterns.regexes[pid]), pid) for pid in pids
                ]
        self._folded_eq: list[dict[str, tuple[int, ...]] | None] = [None] * size
        self._cased_eq: list[dict[str, tuple[int, ...]] | None] = [None] * size
        for (group, kind), table in items.patterns.equals.items():
            (self._cased_eq if kind == CASED else self._folded_eq)[group] = table
        # Per field number: does any database, table or regex read it?
        self._readable = [
            any(
                kind[n] is not None
                for kind in (self._folded, self._folded_eq, self._regex, self._cased)
            )
            or self._cased_eq[n] is not None
            for n in range(size)
        ]
        self._keywords = any(db is not None for db in self._keyword_dbs)
        self._prefilter = KeywordPrefilter(
            [
                self._plan.items[i]
                for i in sorted(items.covered)
                if self._plan.items[i].field is None
            ]
        )
        self._routes: dict[LogSource, Route] = {}
        self._resolver = FieldResolver(items.fields, items.spellings)
        self._router = RuleRouter(self._plan.rules)
        used = {i for rule in self._plan.rules for i in rule.item_ids}
        self._unused = frozenset(i for i in items.covered if i not in used)
        # Patterns that satisfy a matcher of an all-of item; each (item, matcher) slot as an int.
        all_slots = items.patterns.all_slots
        self._slotted = frozenset(all_slots)
        codes: dict[tuple[int, int], int] = {}
        for slots in all_slots.values():
            for slot in slots:
                codes.setdefault(slot, len(codes))
        self._slot_codes = {
            pid: frozenset(codes[s] for s in slots) for pid, slots in all_slots.items()
        }
        self._slot_items = {pid: frozenset(i for i, _ in slots) for pid, slots in all_slots.items()}
        self._required_slots = {
            item_id: frozenset(codes[item_id, m] for m in range(count) if (item_id, m) in codes)
            if all((item_id, m) in codes for m in range(count))
            else frozenset((-1,))  # a matcher no pattern can meet: never complete
            for item_id, count in items.need.items()
        }
        self._value_memo = ValueMemo(
            self._scan_text, self._entry_items, self._resolver, MEMO_LIMIT, self._route_of
        )
        self._fallback: dict[int, ItemTest] | None = None
        self._text_pids: dict[tuple[int, str], tuple[int, ...]] = {}
        # (key, list as a tuple, its element types) -> the list's items: Zeek lists repeat
        # (the element types keep True and 1 apart)
        self._list_entries: dict[tuple[str, tuple[Any, ...], tuple[type, ...]], frozenset[int]] = {}
        self.fallback_events = 0
        """Events decided by the items' Python closures instead (field names clashing by case)."""

    def clear_memo(self) -> None:
        """Forget remembered field values (benchmarks use it to measure a first pass)."""
        self._value_memo.clear()
        self._text_pids.clear()
        self._list_entries.clear()

    @property
    def covered(self) -> frozenset[int]:
        """Item ids decided by the scan."""
        return self._items.covered

    @property
    def patterns(self) -> ItemPatterns:
        """The translated patterns (for statistics and benchmarks)."""
        return self._items

    def decide(self, events: Sequence[Event]) -> list[set[int]]:
        """For each event, the covered items that are true."""
        out, slow, layouts = self._value_memo.decide(events)
        for position in slow:
            known = layouts[position]
            if known is None:  # keys that differ only in case
                out[position] = self._decide_each(events[position])
            else:
                out[position] = self._decide_lists(events[position].fields, known[0], known[1])
        for event, true, known in zip(events, out, layouts, strict=True):
            if true is None:
                continue
            route = known[2] if known is not None else self._route_of(event.logsource)
            if route.keywords and self._keywords_may_match(route, event.fields, known):
                true |= self._keyword_items(event.fields)
        return out  # type: ignore[return-value]  # every position is filled now

    @staticmethod
    def _keywords_may_match(
        route: Route, fields: dict[str, Any], known: KnownLayout | None
    ) -> bool:
        """Whether the event's keyword items must be decided exactly (the prefilter's answer)."""
        pieces = route.pieces
        if route.exact_keywords or pieces is None or known is None:  # no layout: a case clash
            return True
        return pieces.may_match(fields, known[0])

    def _decide_lists(
        self, fields: dict[str, Any], layout: Layout, memos: tuple[KeyMemo, ...]
    ) -> set[int]:
        """Field items of an event with a list among its read values: the scalar values
        through the value memo, each list element by element (an all-of item may be completed
        by several elements)."""
        true: set[int] = set()
        lists = self._list_entries
        for key, memo, value in zip(layout.read, memos, layout.read_values(fields), strict=True):
            kind = type(value)
            if kind in _SCALARS:
                entry = memo[value]  # learned if new
                if _MEMO_MARKS.isdisjoint(entry):
                    true |= entry
                    continue
            elif kind is list:
                if not value:  # an empty list renders nothing
                    continue
                remembered: tuple[str, tuple[Any, ...], tuple[type, ...]] | None
                try:
                    remembered = (key, tuple(value), tuple(map(type, value)))
                    found = lists.get(remembered)
                except TypeError:  # nested lists or objects: not remembered
                    remembered, found = None, None
                if found is None:
                    found = self._entry_items(self._value_pids(self._resolver.number(key), value))
                    if remembered is not None:
                        if len(lists) >= MEMO_LIMIT // 4:
                            lists.clear()
                        lists[remembered] = found
                true |= found
                continue
            true |= self._entry_items(self._value_pids(self._resolver.number(key), value))
        return true

    def _value_pids(self, number: int, value: Any) -> list[int]:
        """True pattern ids of every string ``value`` renders as, remembered per (field, text)
        (Zeek logs hold lists in most records)."""
        pids: list[int] = []
        known = self._text_pids
        for text in render_values(value):
            found = known.get((number, text))
            if found is None:
                found = tuple(self._scan_value(number, text))
                if len(text) <= LONGEST_REMEMBERED:
                    if len(known) >= MEMO_LIMIT // 4:
                        known.clear()
                    known[number, text] = found
            pids.extend(found)
        return pids

    def _scan_text(self, key: str, text: str) -> list[int]:
        """True pattern ids of ``text`` as a value of ``key`` (see :meth:`_scan_value`)."""
        return self._scan_value(self._resolver.number(key), text)

    def _scan_value(self, number: int, text: str) -> list[int]:
        """True pattern ids of ``text`` as a value of field ``number``: its equality tables,
        databases and regexes (not keywords)."""
        found: list[int] = []
        if not number:
            return found
        low = text.lower()
        table = self._folded_eq[number]
        if table is not None:
            found.extend(table.get(low, ()))
        table = self._cased_eq[number]
        if table is not None:
            found.extend(table.get(text, ()))
        collect = self._collect_into(found)
        database = self._folded[number]
        if database is not None:
            data = b"\xff" + low.encode("utf-8", "surrogatepass") + CLOSE
            database.scan(data, match_event_handler=collect)
        database = self._cased[number]
        if database is not None:
            data = b"\xff" + text.encode("utf-8", "surrogatepass") + CLOSE
            database.scan(data, match_event_handler=collect)
        if self._regex[number] is not None:
            found.extend(self._regex_pids(number, text))
        return found

    @staticmethod
    def _collect_into(found: list[int]) -> Callable[[int, int, int, int, object], None]:
        append = found.append

        def collect(pid: int, start: int, end: int, flags: int, context: object) -> None:
            append(pid)

        return collect

    def _regex_pids(self, number: int, text: str) -> list[int]:
        """Regex patterns of field ``number`` that ``text`` matches (one value, one scan)."""
        found: list[int] = []
        if text.isascii():

            def collect(pid: int, start: int, end: int, flags: int, context: object) -> None:
                found.append(pid)

            data = b"\xff" + text.encode("ascii") + CLOSE_REGEX
            self._regex[number].scan(data, match_event_handler=collect)
        else:
            for search, pid in self._regex_py[number] or ():
                if search(text) is not None:
                    found.append(pid)
        return found

    def _entry_items(self, pids: list[int]) -> frozenset[int]:
        """Items that the true patterns ``pids`` of one field value make true."""
        patterns = self._items.patterns
        items = frozenset().union(*map(patterns.any_items.__getitem__, pids))
        slotted = self._slotted.intersection(pids)
        if not slotted:
            return items
        # An all-of item is true when every matcher met this value (a field has one value on
        # the memo's path, so no other value can complete it): its slots, all met.
        met = frozenset().union(*map(self._slot_codes.__getitem__, slotted))
        touched = frozenset().union(*map(self._slot_items.__getitem__, slotted))
        required = self._required_slots
        return items.union([i for i in touched if required[i] <= met])

    def _decide_each(self, event: Event) -> set[int]:
        """The field items of an event whose keys differ only in case: the field lookup decides
        which key each field reads, and every read value goes through :meth:`_value_pids`."""
        fields = event.fields
        numbers = self._resolver.numbers(fields)
        if numbers is None:  # spellings of one field would read different keys
            return self._decide_in_python(event)
        read = self._route_of(event.logsource).read
        pids: list[int] = []
        for key, value in fields.items():
            number = numbers[key]
            if read[number]:
                pids.extend(self._value_pids(number, value))
        return set(self._entry_items(pids))

    def _route_of(self, logsource: LogSource) -> Route:
        """The route of ``logsource`` (worked out on first use)."""
        route = self._routes.get(logsource)
        return self._route(logsource) if route is None else route

    def _route(self, logsource: LogSource) -> Route:
        """Which fields (and whether keywords) the rules of ``logsource`` read.

        The protocol lets a scanner leave out items of rules that do not apply to an event, so
        an event only pays for the fields its own rules look at: a Security 4624 is not scanned
        for process-creation command lines, and most events skip the keyword scan.
        """
        plan, fields = self._plan, self._items.fields
        covered = self._items.covered
        needed: set[int] = set()
        keywords = False
        # Items no rule uses (plans built by hand) are always decided.
        admitted = set(self._unused)
        for index in self._router.admitting(logsource):
            admitted.update(plan.rules[index].item_ids)
        for item_id in admitted:
            if item_id in covered:
                name = plan.items[item_id].field
                if name is None:
                    keywords = True
                else:
                    needed.add(fields[name.lower()])
        read = [r and n in needed for n, r in enumerate(self._readable)]
        keywords = keywords and self._keywords
        # keyword items the prefilter cannot vouch for: decide them exactly for every event
        pieces = self._prefilter.database_for(frozenset(admitted)) if keywords else None
        exact = keywords and (pieces is None or not self._prefilter.unusable.isdisjoint(admitted))
        route = Route(read, keywords, exact, pieces)
        if len(self._routes) > 4096:  # logsources are few; a flood of odd ones must not grow this
            self._routes.clear()
        self._routes[logsource] = route
        return route

    def _keyword_items(self, fields: dict[str, Any]) -> set[int]:
        """Keyword items true for the event, decided exactly (every value rendered, scanned)."""
        strings = render_values(list(fields.values()))
        if not strings:
            return set()
        hits: list[int] = []

        def collect(pid: int, start: int, end: int, flags: int, context: object) -> None:
            hits.append(pid)

        self._scan_keywords(strings, collect)
        patterns = self._items.patterns
        true: set[int] = set()
        slots: dict[int, set[int]] = {}
        for pid in set(hits):
            true.update(patterns.any_items[pid])
            for item_id, matcher in patterns.all_slots.get(pid, ()):
                slots.setdefault(item_id, set()).add(matcher)
        need = self._items.need
        true.update(i for i, matchers in slots.items() if len(matchers) == need[i])
        return true

    def _scan_keywords(self, strings: list[str], on_match: Any) -> None:
        """Scan every value of the event, joined by the delimiter, with the keyword databases."""
        text = "\x00".join(strings)
        exact = text.count("\x00") == len(strings) - 1
        for database, fold in zip(self._keyword_dbs, (True, False), strict=True):
            if database is None:
                continue
            if exact:
                body = (text.lower() if fold else text).encode("utf-8", "surrogatepass")
                body = body.replace(b"\x00", b"\xff")
            else:  # a value holds the join character itself: encode value by value
                body = b"\xff".join(
                    (s.lower() if fold else s).encode("utf-8", "surrogatepass") for s in strings
                )
            database.scan(b"\xff" + body + CLOSE, match_event_handler=on_match)

    def _decide_in_python(self, event: Event) -> set[int]:
        self.fallback_events += 1
        if self._fallback is None:
            items = self._plan.items
            self._fallback = {i: item_test(items[i]) for i in self._items.covered}
        view = EventView(event.fields)
        return {i for i, test in self._fallback.items() if test(view)}

    def __getstate__(self) -> dict[str, Any]:
        # Hyperscan databases do not pickle; their serialised form does, and loads fast.
        return {
            "plan": self._plan,
            "cache_dir": self._cache_dir,
            "items": self._items,
            "bundle": self._bundle,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._plan = state["plan"]
        self._cache_dir = state["cache_dir"]
        self._items = state["items"]
        self._bundle = state["bundle"]
        self._setup()


def _plan_key(plan: RulePlan, fingerprint: str | None) -> str:
    """Digest of a plan (or of the fingerprint of its sources) and of the translation's format."""
    digest = hashlib.sha256(f"{FORMAT_VERSION}:{getattr(hyperscan, '__version__', '')}:".encode())
    if fingerprint is not None:
        digest.update(b"sources:" + fingerprint.encode())
    else:  # about 0.15 s for the Windows corpus
        digest.update(pickle.dumps(plan, pickle.HIGHEST_PROTOCOL))
    return digest.hexdigest()[:32]


def _python_search(regex: Regex) -> Callable[[str], object]:
    """A search of non-ASCII values with ``re.search``'s meaning: RE2 (linear time) when it can
    say the pattern, else ``re.search`` exactly as the engine's closures build it."""
    linear = unicode_search(regex)
    if linear is not None:
        return linear
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)):
        if letter in regex.flags:
            flags |= flag
    return re.compile(regex.pattern, flags).search


def _factory(plan: RulePlan, cache_dir: Path | None, plan_key: str | None) -> ItemScanner:
    return HyperscanScanner(plan, cache_dir, plan_key)


SCANNERS["hyperscan"] = _factory
