"""Range conditions that pySigma 2.0 refuses, taken out of a rule file before pySigma sees it.

The specification writes a range as two operators in one condition (``gt: 100`` and
``lte: 200``); pySigma 2.0 raises "exactly one condition item" while parsing the file, which
loses every rule of that file. :func:`split_range_correlations` blanks those documents out of
the text (keeping every line number) and returns them as :class:`CorrelationSpec` objects that
the :class:`~vedette.correlate.Correlator` accepts beside pySigma's correlation rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from vedette.correlate.condition import OPERATORS
from vedette.correlate.plain_yaml import AliasError, load_plain
from vedette.correlate.spec import CorrelationSpec, SpecError, spec_from_mapping

_SEPARATOR = re.compile(r"^---[ \t]*(#.*)?$")


@dataclass(slots=True)
class RangeSplit:
    """The text left for pySigma, the range correlations, and those that cannot be honoured."""

    text: str
    specs: list[CorrelationSpec] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(line, reason) of range correlation documents that are not valid."""


def split_range_correlations(text: str, *, path: str = "<memory>") -> RangeSplit:
    """Take correlation documents with several condition operators out of ``text``."""
    lines = text.splitlines(keepends=True)
    starts = [0] + [i + 1 for i, line in enumerate(lines) if _SEPARATOR.match(line.rstrip("\r\n"))]
    ends = [*starts[1:], len(lines) + 1]
    split = RangeSplit(text)
    if len(starts) == 1 and "correlation" not in text:
        return split
    kept = list(lines)
    for start, end in zip(starts, ends, strict=True):
        body = "".join(lines[start : end - 1])
        try:
            document = _load(body)
        except AliasError as error:
            if not _mentions_correlation(body):
                continue  # a detection rule: pySigma bounds what its aliases expand to
            at = f" (line {start + error.line})" if error.line else ""
            split.errors.append((start + 1, f"YAML aliases are not accepted in correlations{at}"))
            _blank(kept, lines, start, end)
            continue
        if not _is_range_correlation(document):
            continue
        assert isinstance(document, Mapping)
        first_line = start + 1
        try:
            split.specs.append(spec_from_mapping(document, path=path, line=first_line))
        except SpecError as error:
            split.errors.append((first_line, str(error)))
        _blank(kept, lines, start, end)
    split.text = "".join(kept)
    return split


def _blank(kept: list[str], lines: list[str], start: int, end: int) -> None:
    """Empty the lines of one document (line numbers of the others stay)."""
    for index in range(start, end - 1):
        kept[index] = "\n" if lines[index].endswith("\n") else ""


def _mentions_correlation(body: str) -> bool:
    return any(line.startswith("correlation:") for line in body.splitlines())


def _load(body: str) -> Any:
    """The document, or None when it is not YAML (pySigma reports it); AliasError when it has
    an alias (expanding one may take gigabytes)."""
    try:
        return load_plain(body)
    except AliasError:
        raise
    except yaml.YAMLError:
        return None


def _is_range_correlation(document: Any) -> bool:
    if not isinstance(document, Mapping):
        return False
    body = document.get("correlation")
    if not isinstance(body, Mapping):
        return False
    condition = body.get("condition")
    return isinstance(condition, Mapping) and sum(key in OPERATORS for key in condition) > 1
