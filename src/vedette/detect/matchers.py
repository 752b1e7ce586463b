"""Python closures for plan matchers and detection items.

Each :class:`~vedette.detect.plan.DetectionItem` becomes one function ``item(view) -> bool`` built
once per engine from a registry of matcher builders (one per matcher kind). :class:`EventView`
gives an event's fields the plan's lookup rules (exact key first, then case-insensitive) and
caches what several items need (lower-cased key map, every rendered value for keyword items).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from vedette.detect.plan import (
    AnyOf,
    Cidr,
    Compare,
    DetectionItem,
    Exists,
    FieldRef,
    Glob,
    Null,
    Regex,
    TimePart,
    ValueMatcher,
    Wildcard,
    render_values,
)
from vedette.detect.unicode_regex import unicode_search

MISSING: Any = object()
"""Sentinel for an absent field (distinct from a field whose value is None)."""


class EventView:
    """One event's fields, looked up the way the plan says (exact, then case-insensitive)."""

    __slots__ = ("_all", "_lower", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self._lower: dict[str, Any] | None = None
        self._all: list[str] | None = None

    def get(self, name: str) -> Any:
        """The field's value, or :data:`MISSING`."""
        value = self.fields.get(name, MISSING)
        if value is MISSING:
            lower = self._lower
            if lower is None:
                lower = {}
                for key, val in self.fields.items():
                    lower.setdefault(key.lower(), val)
                self._lower = lower
            value = lower.get(name.lower(), MISSING)
        return value

    def all_strings(self) -> list[str]:
        """Every rendered value of every field (what a keyword item searches)."""
        if self._all is None:
            self._all = render_values(list(self.fields.values()))
        return self._all


ValueTest = Callable[[Any, EventView], bool]
"""A compiled matcher: (field value or MISSING, event view) -> bool."""
StringTest = Callable[[str], bool]


# -- strings -----------------------------------------------------------------------------------


def glob_string_test(glob: Glob) -> StringTest:
    """A test of one rendered string against ``glob`` (lower-casing unless case-sensitive)."""
    shape = glob.shape()
    cased = glob.case_sensitive
    if shape is not None:
        kind, text = shape
        if kind == "eq":
            return (lambda s: s == text) if cased else (lambda s: s.lower() == text)
        if kind == "prefix":
            return (
                (lambda s: s.startswith(text)) if cased else (lambda s: s.lower().startswith(text))
            )
        if kind == "suffix":
            return (lambda s: s.endswith(text)) if cased else (lambda s: s.lower().endswith(text))
        return (lambda s: text in s) if cased else (lambda s: text in s.lower())
    pattern = glob_regex(glob)
    match = pattern.fullmatch
    if cased:
        return lambda s: match(s) is not None
    return lambda s: match(s.lower()) is not None


def glob_regex(glob: Glob) -> re.Pattern[str]:
    """The glob as a regular expression (lower-cased literals unless case-sensitive)."""
    out: list[str] = []
    for tok in glob.tokens:
        if tok is Wildcard.ANY:
            out.append(".*")
        elif tok is Wildcard.ONE:
            out.append(".")
        else:
            text = str(tok)
            out.append(re.escape(text if glob.case_sensitive else text.lower()))
    return re.compile("".join(out), re.DOTALL)


def _regex_test(matcher: Regex) -> StringTest:
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)):
        if letter in matcher.flags:
            flags |= flag
    search = re.compile(matcher.pattern, flags).search
    linear = unicode_search(matcher)
    if linear is None:
        return lambda s: search(s) is not None
    # non-ASCII text goes to RE2: Python's re backtracks ((a+)+$: minutes on 40 characters)
    return lambda s: (search(s) if s.isascii() else linear(s)) is not None


def string_test(matcher: ValueMatcher) -> StringTest | None:
    """A per-string test for string-like matchers (globs, regex, AnyOf of them), else None."""
    if isinstance(matcher, Glob):
        return glob_string_test(matcher)
    if isinstance(matcher, Regex):
        return _regex_test(matcher)
    if isinstance(matcher, AnyOf):
        tests = [string_test(m) for m in matcher.alternatives]
        if any(t is None for t in tests):
            return None
        ready = [t for t in tests if t is not None]
        return lambda s: any(t(s) for t in ready)
    return None


def _over_values(test: StringTest) -> ValueTest:
    def run(value: Any, view: EventView) -> bool:
        if value is MISSING or value is None:
            return False
        if isinstance(value, str):
            return test(value)
        return any(test(s) for s in render_values(value))

    return run


# -- other kinds -------------------------------------------------------------------------------


def _cidr(matcher: Cidr) -> ValueTest:
    networks = [ipaddress.ip_network(n, strict=False) for n in matcher.networks]

    def test(s: str) -> bool:
        try:
            address = ipaddress.ip_address(s.strip().split("%", 1)[0].strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            mapped = address.ipv4_mapped
            return any(address in n or mapped in n for n in networks)
        return any(address in n for n in networks)

    return _over_values(test)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    return None


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def _over_scalars(convert: Callable[[Any], Any], accept: Callable[[Any], bool]) -> ValueTest:
    """True when some element of the value (or the value itself) converts and is accepted."""

    def run(value: Any, view: EventView) -> bool:
        if value is MISSING or value is None:
            return False
        values = value if isinstance(value, (list, tuple)) else (value,)
        for v in values:
            converted = convert(v)
            if converted is not None and accept(converted):
                return True
        return False

    return run


def _compare(matcher: Compare) -> ValueTest:
    op = _COMPARE[matcher.op]
    bound = matcher.number
    return _over_scalars(_number, lambda n: op(n, bound))


def _exists(matcher: Exists) -> ValueTest:
    want = matcher.present
    # The modifier appendix: exists "only verifies the presence of a field, not its value, be
    # it empty or null".
    return lambda value, view: (value is not MISSING) is want


def _null(matcher: Null) -> ValueTest:
    # An empty string is no value too: EVTX records an absent value as an empty <Data>
    # element (Sysmon's StartModule), and rule authors write `StartModule: null` for it
    # (docs/sigma-semantics.md, "Empty values").
    return lambda value, view: value is MISSING or value is None or value == "" or value == []


def _fieldref(matcher: FieldRef) -> ValueTest:
    other = matcher.other
    starts, ends = matcher.starts_with, matcher.ends_with

    def same(a: str, b: str) -> bool:
        if starts and ends:
            return b in a
        if starts:
            return a.startswith(b)
        if ends:
            return a.endswith(b)
        return a == b

    def run(value: Any, view: EventView) -> bool:
        if value is MISSING or value is None:
            return False
        ref = view.get(other)
        if ref is MISSING or ref is None:
            return False
        mine = [s.lower() for s in render_values(value)]
        theirs = [s.lower() for s in render_values(ref)]
        return any(same(a, b) for a in mine for b in theirs)

    return run


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value  # epoch milliseconds or seconds
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


_TIME_PARTS: dict[str, Callable[[datetime], int]] = {
    "minute": lambda d: d.minute,
    "hour": lambda d: d.hour,
    "day": lambda d: d.day,
    "week": lambda d: d.isocalendar().week,
    "month": lambda d: d.month,
    "year": lambda d: d.year,
}


def _timepart(matcher: TimePart) -> ValueTest:
    part = _TIME_PARTS[matcher.part]
    want = matcher.number
    return _over_scalars(_timestamp, lambda moment: part(moment.astimezone(UTC)) == want)


def _anyof(matcher: AnyOf) -> ValueTest:
    tests = [value_test(m) for m in matcher.alternatives]
    return lambda value, view: any(t(value, view) for t in tests)


def _string_kind(matcher: ValueMatcher) -> ValueTest:
    test = string_test(matcher)
    assert test is not None
    return _over_values(test)


BUILDERS: dict[type, Callable[[Any], ValueTest]] = {
    Glob: _string_kind,
    Regex: _string_kind,
    Cidr: _cidr,
    Compare: _compare,
    Exists: _exists,
    Null: _null,
    FieldRef: _fieldref,
    TimePart: _timepart,
    AnyOf: _anyof,
}
"""Matcher kind -> builder of its Python test (a registry, not an if-chain)."""


def value_test(matcher: ValueMatcher) -> ValueTest:
    """The Python test of one matcher."""
    if isinstance(matcher, AnyOf) and string_test(matcher) is not None:
        return _string_kind(matcher)
    return BUILDERS[type(matcher)](matcher)


ItemTest = Callable[[EventView], bool]


def item_test(item: DetectionItem) -> ItemTest:
    """The Python function deciding ``item`` for an event view."""
    if item.field is None:
        tests = [string_test(m) for m in item.matchers]
        ready = [t for t in tests if t is not None]
        if len(ready) != len(tests):
            raise ValueError("keyword item with a non-string matcher")
        if item.match_all:
            return lambda view: all(any(t(s) for s in view.all_strings()) for t in ready)
        return lambda view: any(t(s) for s in view.all_strings() for t in ready)
    name = item.field
    value_tests = [value_test(m) for m in item.matchers]
    if len(value_tests) == 1:
        only = value_tests[0]
        return lambda view: only(view.get(name), view)
    if item.match_all:
        return lambda view: all(t(v, view) for v in (view.get(name),) for t in value_tests)
    return lambda view: any(t(v, view) for v in (view.get(name),) for t in value_tests)
