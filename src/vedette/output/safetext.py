"""Text from logs made safe to print: no control character reaches a terminal raw.

A log field or a file name can hold ESC sequences (``\\x1b]0;title\\x07``, ``\\x1b[2J``) that a
terminal would obey, carriage returns that overwrite a line, or bidirectional overrides that
reorder what a reader sees. :func:`printable` shows each such character as an escape
(``\\x1b``, ``\\r``, ``\\u202e``) so what is printed is what the log holds.
"""

from __future__ import annotations

_CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES: dict[int, str] = {code: f"\\x{code:02x}" for code in _CONTROLS}
_ESCAPES.update({code: f"\\u{code:04x}" for code in _BIDI})
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_TABLE = str.maketrans(_ESCAPES)


def printable(text: str) -> str:
    """``text`` with control, ESC and bidi-override characters written as escapes."""
    if text.isprintable():  # every character escaped here is non-printable: one C-level scan
        return text
    return text.translate(_TABLE)


CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet takes for the start of a formula (OWASP CSV injection)."""


def csv_cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text: a formula start is preceded by ``'``."""
    if text.startswith(CSV_FORMULA_STARTS):
        return "'" + text
    return text
