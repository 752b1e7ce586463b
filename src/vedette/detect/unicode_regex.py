"""``|re`` patterns over non-ASCII values, matched in linear time by RE2 with Python's semantics.

Hyperscan decides regexes over ASCII values (``hs_regex``); the rest used to go to Python's
``re``, which backtracks: ``(a+)+$`` took over 60 s on 40 characters. RE2 cannot backtrack.
The pattern is parsed with ``re``'s own parser and written out in RE2 syntax with the meaning
Python gives it on ``str`` (Unicode classes and case folding):

* ``\\d`` is ``\\p{Nd}``, ``\\w`` is ``[\\p{L}\\p{N}_]``, ``\\s`` is ``str.isspace``'s set;
* ``$`` (without ``re.M``) is ``\\n?\\z`` and ``\\Z`` is ``\\z``: only whether a match exists is
  asked, so consuming the final newline changes nothing; lazy repeats become greedy likewise;
* ``re.I``, ``re.S`` and ``re.M`` become RE2's ``i``, ``s`` and ``m`` flags, per group as given.

Anything RE2 cannot say with Python's meaning (lookaround, backreferences, atomic groups,
possessive repeats, ``\\b`` (ASCII-only in RE2), ``re.ASCII``) is left to Python's ``re``:
:func:`unicode_search` returns None for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from re import _constants as sre_constants  # type: ignore[attr-defined]  # re's own parser
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from vedette.detect.plan import Regex

try:  # google-re2; without it every pattern stays with Python's re
    import re2  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - a declared dependency
    re2 = None

_C = sre_constants
_SPACE = r"\t-\r\x{1c}-\x{1f}\x{85}\p{Z}"
_WORD = r"\p{L}\p{N}_"
_CLASS_OF: dict[Any, tuple[str, bool]] = {
    _C.CATEGORY_DIGIT: (r"\p{Nd}", False),
    _C.CATEGORY_NOT_DIGIT: (r"\p{Nd}", True),
    _C.CATEGORY_SPACE: (_SPACE, False),
    _C.CATEGORY_NOT_SPACE: (_SPACE, True),
    _C.CATEGORY_WORD: (_WORD, False),
    _C.CATEGORY_NOT_WORD: (_WORD, True),
}
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"))
Search = Callable[[str], object]


class _Untranslatable(Exception):
    """RE2 cannot match this construct with Python's meaning."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is ours to handle, not stderr's
    return options


def unicode_search(regex: Regex) -> Search | None:
    """An RE2 ``search`` of ``regex`` equal to ``re.search``'s truth on any ``str``, or None
    when RE2 cannot express it (the caller keeps Python's ``re``)."""
    if re2 is None:
        return None
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)):
        if letter in regex.flags:
            flags |= flag
    try:
        parsed = sre_parse.parse(regex.pattern, flags)
        state = parsed.state.flags
        if state & (re.ASCII | re.LOCALE):
            return None
        body = _sequence(list(parsed), state & (re.IGNORECASE | re.DOTALL | re.MULTILINE))
        compiled = re2.compile(_prefix(state) + body, _options())
    except (re.error, _Untranslatable, RecursionError):
        return None
    except Exception:  # re2's own error type: whatever it refuses stays with Python's re
        return None
    search: Search = compiled.search
    return search


def _prefix(flags: int) -> str:
    letters = "".join(letter for flag, letter in _FLAG_LETTERS if flags & flag)
    return f"(?{letters})" if letters else ""


def _char(code: int) -> str:
    return f"\\x{{{code:x}}}"


def _sequence(items: list[Any], flags: int) -> str:
    return "".join(_node(op, arg, flags) for op, arg in items)


def _node(op: Any, arg: Any, flags: int) -> str:
    if op is _C.LITERAL:
        return _char(arg)
    if op is _C.NOT_LITERAL:
        return f"[^{_char(arg)}]"
    if op is _C.ANY:
        return "(?s:.)" if flags & re.DOTALL else "(?-s:.)"
    if op is _C.IN:
        return _charset(arg)
    if op is _C.BRANCH:
        return "(?:" + "|".join(_sequence(list(a), flags) for a in arg[1]) + ")"
    if op is _C.SUBPATTERN:
        _group, add_flags, del_flags, pattern = arg
        if (add_flags | del_flags) & ~(re.IGNORECASE | re.DOTALL | re.MULTILINE):
            raise _Untranslatable("inline flag RE2 lacks")
        inner_flags = (flags | add_flags) & ~del_flags
        on = "".join(letter for flag, letter in _FLAG_LETTERS if add_flags & flag)
        off = "".join(letter for flag, letter in _FLAG_LETTERS if del_flags & flag)
        switch = on + (f"-{off}" if off else "")
        return f"(?{switch}:" + _sequence(list(pattern), inner_flags) + ")"
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        low, high, pattern = arg
        if low > 1000 or (high is not _C.MAXREPEAT and high > 1000):
            raise _Untranslatable("RE2 repeats at most 1000 times")
        inner = "(?:" + _sequence(list(pattern), flags) + ")"
        if high is _C.MAXREPEAT:
            return f"{inner}{{{low},}}"
        return f"{inner}{{{low},{high}}}"
    if op is _C.AT:
        return _anchor(arg, flags)
    raise _Untranslatable(str(op))


def _anchor(arg: Any, flags: int) -> str:
    multiline = bool(flags & re.MULTILINE)
    if arg is _C.AT_BEGINNING:
        return "(?m:^)" if multiline else r"\A"
    if arg is _C.AT_BEGINNING_STRING:
        return r"\A"
    if arg is _C.AT_END:
        # Python's $ also matches before a final newline; without re.M, consume it
        return "(?m:$)" if multiline else r"(?:\n?\z)"
    if arg is _C.AT_END_STRING:
        return r"\z"
    raise _Untranslatable("word boundary (RE2's is ASCII only)")


def _charset(items: list[Any]) -> str:
    negate = False
    parts: list[str] = []
    for op, arg in items:
        if op is _C.NEGATE:
            negate = True
        elif op is _C.LITERAL:
            parts.append(_char(arg))
        elif op is _C.RANGE:
            parts.append(f"{_char(arg[0])}-{_char(arg[1])}")
        elif op is _C.CATEGORY and arg in _CLASS_OF:
            text, negated = _CLASS_OF[arg]
            if negated:
                if negate or len(items) > 1:
                    raise _Untranslatable("negated category inside a class")
                return f"[^{text}]"
            parts.append(text)
        else:
            raise _Untranslatable(f"class item {op}")
    if not parts:
        raise _Untranslatable("empty class")
    return ("[^" if negate else "[") + "".join(parts) + "]"
