"""YAML without anchors and aliases, for documents Vedette reads itself.

An alias is a reference: nine aliases of nine aliases, eight levels deep, parse in microseconds
and expand to 43 million nodes once walked as a tree (a "billion laughs"; it took 4 GB). pySigma
bounds the expansion of the rules it parses; the range correlations and placeholder files that
Vedette reads on its own refuse aliases outright: no rule needs them.
"""

from __future__ import annotations

from typing import Any

import yaml

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C when built


class AliasError(yaml.YAMLError):
    """The document uses a YAML alias (``*name``)."""

    def __init__(self, line: int | None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"YAML aliases (*name) are not accepted here{where}")
        self.line = line


def first_alias_line(text: str) -> int | None:
    """The 1-based line of the first alias in ``text``, or None when it has none (the event
    stream is read, nothing is built, so a bomb costs its length only)."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            return mark.line + 1 if mark is not None else 0
    return None


def load_plain(text: str) -> Any:
    """``yaml.safe_load`` of a document that has no alias; raises :class:`AliasError` for one
    that has (and YAMLError for bad YAML)."""
    line = first_alias_line(text)
    if line is not None:
        raise AliasError(line)
    return yaml.load(text, Loader=_Loader)  # a safe loader (C when built)
