"""Regular expressions Hyperscan can match with exactly Python's ``re.search`` semantics."""

from __future__ import annotations

from vedette.detect.plan import Regex


def translate_regex(regex: Regex) -> tuple[bytes, int, bool] | None:
    """``(expression, flags, cased)`` for ``regex``, or None (Python decides)."""
    return None
