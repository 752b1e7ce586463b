"""Small, explicit adjustments to pySigma so it parses everything specification v2.1 lists.

pySigma 2.0.1 knows every value modifier of the specification's modifier appendix except the
name ``utf16le``, which the specification defines as an alias of ``wide``. It is registered in
pySigma's modifier table (a plain dict, its documented extension point) once, at load time.
"""

from __future__ import annotations

from sigma.modifiers import SigmaWideModifier, modifier_mapping

MODIFIER_ALIASES = {"utf16le": SigmaWideModifier}
"""Specification modifier names pySigma lacks, and the pySigma class implementing each."""


def install() -> None:
    """Register the aliases (idempotent)."""
    for name, modifier in MODIFIER_ALIASES.items():
        modifier_mapping.setdefault(name, modifier)
