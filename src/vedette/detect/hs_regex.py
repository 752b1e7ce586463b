"""Regular expressions Hyperscan can match with exactly Python's ``re.search`` semantics.

Python's ``re`` on ``str`` is Unicode-aware (``\\d`` is any decimal digit, ``re.I`` folds the
Kelvin sign to ``k``...), Hyperscan works on bytes. The two agree on **ASCII** values when the
pattern is rewritten byte for byte, so a regex pattern is only ever scanned over ASCII values;
the scanner hands non-ASCII values to Python's ``re`` itself (see ``hs_scanner``). On ASCII input:
``\\d`` is ``[0-9]``, ``\\s`` is ``[\\t-\\r\\x1c-\\x1f ]`` (``str.isspace``), ``\\w`` is
``[0-9A-Za-z_]``, ``.`` one byte other than newline, ``re.I`` is Hyperscan's caseless flag.

Values are scanned as ``\\xff<value>\\xff``: ``^``/``\\A`` become ``\\xff`` and ``$`` becomes
``\\n?\\xff`` (Python's ``$`` also matches before a final newline), allowed only where they
cannot be reached anywhere but the value's ends (first or last in the pattern, or in each
alternative of a top-level alternation). Every other construct excludes ``\\xff``, so a match
never leaves the value. Anything else (lookaround, backreferences, possessive or atomic groups,
inline flag groups, ``re.M``, patterns that can match the empty string) is left to Python.
"""

from __future__ import annotations

import re
from re import _constants as sre_constants  # type: ignore[attr-defined]  # re's own parser
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import hyperscan

from vedette.detect.plan import Regex

_C = sre_constants
_CATEGORIES: dict[Any, tuple[str, bool]] = {
    _C.CATEGORY_DIGIT: ("0-9", False),
    _C.CATEGORY_NOT_DIGIT: ("0-9", True),
    _C.CATEGORY_SPACE: ("\\x09-\\x0d\\x1c-\\x20", False),
    _C.CATEGORY_NOT_SPACE: ("\\x09-\\x0d\\x1c-\\x20", True),
    _C.CATEGORY_WORD: ("0-9A-Za-z_", False),
    _C.CATEGORY_NOT_WORD: ("0-9A-Za-z_", True),
}
"""sre category -> (ASCII byte ranges, negated)."""


class _Untranslatable(Exception):
    """The pattern uses something Hyperscan cannot match with Python's semantics."""


def _byte(code: int) -> str:
    return f"\\x{code:02x}"


def translate_regex(regex: Regex, *, check: bool = True) -> tuple[bytes, int, bool] | None:
    """``(expression, flags, cased)`` for ``regex`` over ASCII values, or None (Python decides).

    ``cased`` is always True: the pattern runs over the original (not lower-cased) value. With
    ``check`` the expression is test-compiled (a few ms each); the scanner skips that when its
    databases come from the cache, where every pattern has compiled before.
    """
    if "m" in regex.flags:
        return None
    flags = 0
    python_flags = 0
    if "i" in regex.flags:
        python_flags |= re.IGNORECASE
    if "s" in regex.flags:
        python_flags |= re.DOTALL
    try:
        parsed = sre_parse.parse(regex.pattern, python_flags)
        state_flags = parsed.state.flags
        if state_flags & (re.MULTILINE | re.VERBOSE):
            return None
        if parsed.getwidth()[0] == 0:
            return None  # matches the empty string: true for every value, or nearly
        dotall = bool(state_flags & re.DOTALL)
        caseless = bool(state_flags & re.IGNORECASE)
        body = _sequence(list(parsed), dotall, caseless, True, True)
    except (re.error, _Untranslatable, RecursionError):
        return None
    if caseless:
        flags |= hyperscan.HS_FLAG_CASELESS
    expression = body.encode("ascii")
    if check and not _compiles(expression, flags):
        return None
    return expression, flags, True


def unchecked_regex(regex: Regex) -> tuple[bytes, int, bool] | None:
    """:func:`translate_regex` without the test compile."""
    return translate_regex(regex, check=False)


def _compiles(expression: bytes, flags: int) -> bool:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        database.compile(expressions=[expression], ids=[0], elements=1, flags=flags)
    except hyperscan.error:
        return False
    return True


def _sequence(items: list[Any], dotall: bool, caseless: bool, first: bool, last: bool) -> str:
    out: list[str] = []
    for index, (op, arg) in enumerate(items):
        at_start = first and index == 0
        at_end = last and index == len(items) - 1
        out.append(_node(op, arg, dotall, caseless, at_start, at_end))
    return "".join(out)


def _node(op: Any, arg: Any, dotall: bool, caseless: bool, first: bool, last: bool) -> str:
    if op is _C.LITERAL:
        if arg >= 128:
            if caseless:
                raise _Untranslatable("non-ASCII literal under re.I")
            return "".join(_byte(b) for b in chr(arg).encode("utf-8", "surrogatepass"))
        return _byte(arg)
    if op is _C.NOT_LITERAL:
        if arg >= 128:
            raise _Untranslatable("negated non-ASCII literal")
        return f"[^{_byte(arg)}\\xff]"
    if op is _C.ANY:
        return "[^\\xff]" if dotall else "[^\\n\\xff]"
    if op is _C.IN:
        return _charset(arg)
    if op is _C.BRANCH:
        return (
            "(?:"
            + "|".join(_sequence(list(a), dotall, caseless, first, last) for a in arg[1])
            + ")"
        )
    if op is _C.SUBPATTERN:
        _group, add_flags, del_flags, pattern = arg
        if add_flags or del_flags:
            raise _Untranslatable("inline flag group")
        return "(?:" + _sequence(list(pattern), dotall, caseless, first, last) + ")"
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        low, high, pattern = arg
        inner = "(?:" + _sequence(list(pattern), dotall, caseless, False, False) + ")"
        if high is _C.MAXREPEAT:
            return f"{inner}{{{low},}}"
        return f"{inner}{{{low},{high}}}"
    if op is _C.AT:
        if arg in (_C.AT_BEGINNING, _C.AT_BEGINNING_STRING) and first:
            return "\\xff"
        if arg is _C.AT_END and last:
            return "\\n?\\xff"
        if arg is _C.AT_END_STRING and last:
            return "\\xff"
        if arg is _C.AT_BOUNDARY:
            return "\\b"
        if arg is _C.AT_NON_BOUNDARY:
            return "\\B"
        raise _Untranslatable("anchor inside the pattern")
    raise _Untranslatable(str(op))


def _charset(items: list[Any]) -> str:
    negate = False
    ranges: list[str] = []
    for op, arg in items:
        if op is _C.NEGATE:
            negate = True
        elif op is _C.LITERAL:
            if arg >= 128:
                raise _Untranslatable("non-ASCII in a class")
            ranges.append(_byte(arg))
        elif op is _C.RANGE:
            low, high = arg
            if high >= 128:
                raise _Untranslatable("non-ASCII range")
            ranges.append(f"{_byte(low)}-{_byte(high)}")
        elif op is _C.CATEGORY and arg in _CATEGORIES:
            text, negated = _CATEGORIES[arg]
            if negated:
                if negate or len(items) > 1:
                    raise _Untranslatable("negated category inside a class")
                return f"[^{text}\\xff]"
            ranges.append(text)
        else:
            raise _Untranslatable(f"class item {op}")
    if not ranges:
        raise _Untranslatable("empty class")
    if negate:
        return "[^" + "".join(ranges) + "\\xff]"
    return "[" + "".join(ranges) + "]"
