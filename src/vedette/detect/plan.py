"""The matching plan: what a compiled Sigma rule set *is*, independent of how it is evaluated.

The compiler (``detect/compiler.py``) turns pySigma rules into this intermediate representation
(IR); the pure-Python evaluator and any external item scanner (Hyperscan, ``detect/hs_*.py``)
both work from it. Everything here is a frozen, slotted, picklable dataclass, so a plan can be
cached on disk and shipped to worker processes.

Shape
-----
A :class:`RulePlan` holds ``items`` (every distinct :class:`DetectionItem` of every rule, where
``items[i].item_id == i``) and ``rules`` (one :class:`CompiledRule` each). A rule's selections are
boolean trees (:class:`And`, :class:`Or`, :class:`Not`, :class:`ItemRef`) over item ids; its
condition is a tree over :class:`SelRef` (index into ``rule.selections``) with the same
operators. Identical items of different rules are interned once (same field, same matchers, same
linking), so an item is decided once per event however many rules use it. Negation (``neq``,
``not``) lives in the trees, never in items.

Contract for external item scanners (the accelerator relies on exactly this)
-----------------------------------------------------------------------------
1. **What an item means.** ``DetectionItem(field, matchers, match_all)`` is true for an event when
   ``any`` (``match_all=False``) or ``all`` (``match_all=True``) of its matchers is true. A
   matcher of kind :class:`AnyOf` is true when any of its alternatives is (expansion modifiers such
   as ``windash`` and ``base64offset`` stay OR-linked under ``all``, as the specification says).
2. **Field lookup.** Sigma field names are matched case-insensitively: the value of field ``F``
   is ``event.fields[F]`` when that exact key exists, otherwise the value of the first key ``k``
   (in dict order) with ``k.lower() == F.lower()``. ``field=None`` is a keyword item: it is true
   when *any* value of the event matches (keyword globs are compiled as contains-patterns, so a
   scanner sees ordinary globs). Windows logs spell one field several ways across channels and
   versions (``ProcessId``/``ProcessID``, ``CommandLine`` in JSON exports in other cases), SQL
   based engines (Zircolite) are case-insensitive on column names, and no SigmaHQ rule relies on two
   fields differing only in case; hence the choice. A scanner must look fields up the same way;
   keying a field-tagged buffer by ``name.lower()`` is exact except for an event holding keys
   equal but for case, which a scanner must then decide otherwise (the Python index falls back to
   the per-item closures of :mod:`vedette.detect.matchers` for such an event).
3. **Rendering values to strings** (:func:`render_values`): ``str`` as is; ``bool`` as
   ``"true"``/``"false"``; ``int`` as ``str(int)``; a ``float`` with an integral value as its
   integer (``3.0`` -> ``"3"``), other floats as ``repr``; ``None`` renders to nothing; a list or
   tuple renders each element (a multi-valued field matches when any element matches); other types
   (nested dicts, bytes) render to nothing. A rule's numbers and booleans are compiled to globs of
   their rendered form (``EventID: 4688`` is ``Glob(("4688",))``), so ``4688`` and ``"4688"``
   match alike.
4. **Globs** match the *whole* rendered value. Tokens are literal strings and the markers
   :data:`ANY` (``*``: any run of characters, newlines included, possibly empty) and :data:`ONE`
   (``?``: exactly one character); Sigma escaping is already resolved (a literal ``*`` is just a
   character in a ``str`` token). Unless ``case_sensitive`` (modifier ``cased``) the comparison is
   exactly ``glob.lower()`` against ``value.lower()`` — a scanner must be equivalent to that (ASCII
   caseless flags are *not* enough for non-ASCII literals: lowercase both sides instead).
5. **Regex** is Python :func:`re.search` (unanchored) of ``pattern`` with flags ``i``/``m``/``s`` on
   each rendered value; case-sensitive unless ``i``.
6. **Which matchers a scanner may decide**: :class:`Glob`, :class:`AnyOf` of globs, and
   :class:`Regex` when it can guarantee Python semantics for that pattern. All other kinds
   (:class:`Cidr`, :class:`Compare`, :class:`Exists`, :class:`Null`, :class:`FieldRef`,
   :class:`TimePart`) are evaluated by Python. A scanner decides whole items, never part of one: it
   declares the item ids it ``covers``; for each event it returns the covered items that are true
   (see :mod:`vedette.detect.scanner`); the engine evaluates every other item itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from vedette.events import LogSource


class _Compact:
    """Pickles a frozen slotted dataclass as a constructor call.

    The default pickling of frozen slotted dataclasses sets each field through a slow Python
    path; a cached plan holds about a hundred thousand of these objects, so this halves the time
    of a warm start.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        names = self.__dataclass_fields__  # type: ignore[attr-defined]
        return (type(self), tuple(getattr(self, name) for name in names))


class Wildcard(enum.Enum):
    """Wildcard markers inside a :class:`Glob`."""

    ANY = "*"
    ONE = "?"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle as a lookup by value: stable across processes and cheap.
        return (Wildcard, (self.value,))


ANY = Wildcard.ANY
ONE = Wildcard.ONE

GlobToken = str | Wildcard


@dataclass(slots=True, frozen=True)
class Glob(_Compact):
    """Whole-value wildcard match; ``tokens`` alternate literal text and :class:`Wildcard`."""

    tokens: tuple[GlobToken, ...]
    case_sensitive: bool = False

    @property
    def literal(self) -> str | None:
        """The value when the glob has no wildcard (an equality test), else None."""
        if all(isinstance(t, str) for t in self.tokens):
            return "".join(t for t in self.tokens if isinstance(t, str))
        return None

    def shape(self) -> tuple[str, str] | None:
        """``("eq"|"prefix"|"suffix"|"contains", text)`` for the four simple shapes, else None.

        Lower-cased text unless ``case_sensitive``. Scanners and the Python index use this to
        file most globs under a dictionary or a substring test instead of a regex.
        """
        toks = self.tokens
        if not toks:
            return ("eq", "")
        lits = [i for i, t in enumerate(toks) if isinstance(t, str)]
        if ONE in toks or len(lits) > 1:
            return None
        if not lits:
            return ("contains", "")
        at = lits[0]
        text = str(toks[at])
        if not self.case_sensitive:
            text = text.lower()
        head, tail = at > 0, at < len(toks) - 1
        if head and tail:
            return ("contains", text)
        if head:
            return ("suffix", text)
        if tail:
            return ("prefix", text)
        return ("eq", text)


def make_glob(
    tokens: list[GlobToken] | tuple[GlobToken, ...], case_sensitive: bool = False
) -> Glob:
    """A normalised :class:`Glob`: adjacent literals merged, runs of ``*`` collapsed, no empty
    literal. Every glob of a plan is normalised, so equal globs compare equal."""
    out: list[GlobToken] = []
    for tok in tokens:
        if isinstance(tok, str):
            if not tok:
                continue
            if out and isinstance(out[-1], str):
                out[-1] = out[-1] + tok
                continue
        elif tok is ANY and out and out[-1] is ANY:
            continue
        out.append(tok)
    return Glob(tuple(out), case_sensitive)


@dataclass(slots=True, frozen=True)
class Regex(_Compact):
    """Python regular expression (``re.search``) with Sigma flags ``i``, ``m``, ``s``."""

    pattern: str
    flags: str = ""


@dataclass(slots=True, frozen=True)
class Cidr(_Compact):
    """Value is an IPv4/IPv6 address inside one of ``networks`` (``"10.0.0.0/8"``...)."""

    networks: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class Compare(_Compact):
    """Numeric comparison ``value <op> number`` with op in lt, lte, gt, gte."""

    op: str
    number: int | float


@dataclass(slots=True, frozen=True)
class Exists(_Compact):
    """``exists: true``: the field is present (whatever its value, null included)."""

    present: bool


@dataclass(slots=True, frozen=True)
class Null(_Compact):
    """``field: null``: the field is absent, null, an empty string or an empty list."""


@dataclass(slots=True, frozen=True)
class FieldRef(_Compact):
    """``fieldref``: the value equals (or starts/ends with, or contains) field ``other``'s value."""

    other: str
    starts_with: bool = False
    ends_with: bool = False


@dataclass(slots=True, frozen=True)
class TimePart(_Compact):
    """Time modifiers: ``part`` (minute, hour, day, week, month, year) of a timestamp value."""

    part: str
    number: int


@dataclass(slots=True, frozen=True)
class AnyOf(_Compact):
    """OR of alternatives produced by an expansion modifier (windash, base64offset, expand)."""

    alternatives: tuple[ValueMatcher, ...]


ValueMatcher = Glob | Regex | Cidr | Compare | Exists | Null | FieldRef | TimePart | AnyOf


@dataclass(slots=True, frozen=True)
class DetectionItem(_Compact):
    """One field (or keyword) test: ``any``/``all`` of ``matchers`` over the field's values."""

    item_id: int
    field: str | None
    matchers: tuple[ValueMatcher, ...]
    match_all: bool = False

    def key(self) -> tuple[Any, ...]:
        """Identity used to intern equal items of different rules."""
        name = self.field.lower() if self.field is not None else None
        return (name, self.matchers, self.match_all)


# -- boolean trees -----------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ItemRef(_Compact):
    """Leaf of a selection tree: the truth of item ``item_id``."""

    item_id: int


@dataclass(slots=True, frozen=True)
class SelRef(_Compact):
    """Leaf of a condition tree: the truth of ``rule.selections[index]``."""

    index: int


@dataclass(slots=True, frozen=True)
class And(_Compact):
    """All of ``args``."""

    args: tuple[Node, ...]


@dataclass(slots=True, frozen=True)
class Or(_Compact):
    """Any of ``args``."""

    args: tuple[Node, ...]


@dataclass(slots=True, frozen=True)
class Not(_Compact):
    """Negation of ``arg``."""

    arg: Node


@dataclass(slots=True, frozen=True)
class Const(_Compact):
    """A constant truth value (an empty ``all of`` is true, an empty ``1 of`` false)."""

    value: bool


Node = And | Or | Not | ItemRef | SelRef | Const


def item_ids(node: Node) -> Iterator[int]:
    """Every item id referenced by a selection tree."""
    if isinstance(node, ItemRef):
        yield node.item_id
    elif isinstance(node, (And, Or)):
        for arg in node.args:
            yield from item_ids(arg)
    elif isinstance(node, Not):
        yield from item_ids(node.arg)


def evaluate(
    node: Node, selections: Sequence[Selection], item: Callable[[int], bool | None]
) -> bool | None:
    """Evaluate a tree with Kleene three-valued logic (None = unknown).

    With a two-valued ``item`` this is plain evaluation (used to say which selections matched);
    with unknowns it tells at build time whether a rule can fire without a given set of items.
    """
    if isinstance(node, ItemRef):
        return item(node.item_id)
    if isinstance(node, SelRef):
        return evaluate(selections[node.index].tree, selections, item)
    if isinstance(node, And):
        result: bool | None = True
        for arg in node.args:
            value = evaluate(arg, selections, item)
            if value is False:
                return False
            if value is None:
                result = None
        return result
    if isinstance(node, Or):
        result = False
        for arg in node.args:
            value = evaluate(arg, selections, item)
            if value is True:
                return True
            if value is None:
                result = None
        return result
    if isinstance(node, Not):
        value = evaluate(node.arg, selections, item)
        return None if value is None else not value
    assert isinstance(node, Const)
    return node.value


# -- rules -------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RuleLogSource(_Compact):
    """A rule's logsource (``None`` = not constrained)."""

    product: str | None = None
    service: str | None = None
    category: str | None = None

    def admits(self, logsource: LogSource) -> bool:
        """True when an event with ``logsource`` meets this rule."""
        return logsource.admits(self.product, self.service, self.category)

    def __str__(self) -> str:
        parts = (self.product, self.service, self.category)
        return "/".join(p or "*" for p in parts)


@dataclass(slots=True, frozen=True)
class RuleInfo(_Compact):
    """What a user sees of a loaded rule."""

    id: str
    title: str
    level: str
    status: str | None
    tags: tuple[str, ...]
    logsource: RuleLogSource
    path: str | None
    name: str | None = None
    attack_ids: tuple[str, ...] = ()
    description: str | None = None
    falsepositives: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    author: str | None = None


@dataclass(slots=True, frozen=True)
class Selection(_Compact):
    """A named search identifier of a rule and its tree over item ids."""

    name: str
    tree: Node


@dataclass(slots=True, frozen=True)
class CompiledRule(_Compact):
    """A rule ready to match: selections over items, condition over selections."""

    info: RuleInfo
    selections: tuple[Selection, ...]
    condition: Node
    item_ids: tuple[int, ...] = ()
    needs_true_item: bool = True
    """False when the condition can hold with every item false (``not filter``...): such a rule
    is evaluated for every event of its logsource; others only when one of their items is true."""


@dataclass(slots=True)
class RulePlan:
    """A compiled rule set: interned items and rules (pickled into the cache)."""

    items: list[DetectionItem] = field(default_factory=list)
    rules: list[CompiledRule] = field(default_factory=list)

    def items_for(self, logsource: LogSource) -> frozenset[int]:
        """Ids of the items of every rule that applies to events of ``logsource``.

        A scanner may build one database per distinct event logsource from these (the Python
        index does), so that an event never meets the patterns of rules it cannot fire.
        """
        wanted: set[int] = set()
        for index in RuleRouter(self.rules).admitting(logsource):
            wanted.update(self.rules[index].item_ids)
        return frozenset(wanted)


class RuleRouter:
    """Which rules of a list apply to an event logsource, testing each distinct rule logsource
    once (the SigmaHQ Windows set has 2,865 rules but 66 logsources)."""

    __slots__ = ("_groups",)

    def __init__(self, rules: list[CompiledRule]) -> None:
        groups: dict[RuleLogSource, list[int]] = {}
        for index, rule in enumerate(rules):
            groups.setdefault(rule.info.logsource, []).append(index)
        self._groups = groups

    def admitting(self, logsource: LogSource) -> list[int]:
        """Indexes, in order, of the rules that apply to events of ``logsource``."""
        admitted = [
            index
            for source, indexes in self._groups.items()
            if source.admits(logsource)
            for index in indexes
        ]
        admitted.sort()
        return admitted


def render_values(value: object) -> list[str]:
    """Strings a field value is matched as (see the module docstring, point 3)."""
    out: list[str] = []
    _render_into(value, out)
    return out


def _render_into(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(str(int(value)) if value.is_integer() else repr(value))
    elif isinstance(value, (list, tuple)):
        for element in value:
            _render_into(element, out)
