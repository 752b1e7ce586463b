"""CSV feeds and plain indicator lists.

A plain list has one indicator per line (``#`` starts a comment); its type is declared by the
feed (``type: ip``) or, with ``type: auto`` or none, recognised per line (hashes by length,
addresses, URLs by scheme, e-mail addresses, otherwise domains).

A CSV feed has a header row. The value column is ``value`` (or ``indicator``, ``ioc``,
``observable``); the type comes from a ``type`` column or the feed's declared type. Optional
columns: ``id``, ``confidence``, ``level``, ``valid_from``, ``valid_until``, ``labels``,
``tags``, ``attack`` (technique ids separated by ``;`` or spaces), ``description``.
Sample::

    type,value,confidence,valid_until,attack
    domain,evil.example,90,2030-01-01T00:00:00Z,T1071.004
"""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, cast

from vedette.errors import FeedError
from vedette.events import LEVELS, AttackRef
from vedette.intel.feeds import FeedSpec, parse_time, register_loader
from vedette.intel.model import (
    HASH_LENGTHS,
    FeedReport,
    Indicator,
    IndicatorInfo,
    canonical_type,
    normalize,
    refang,
)

_VALUE_COLUMNS = ("value", "indicator", "ioc", "observable")
_SPLIT = re.compile(r"[;,\s|]+")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffd]")
"""Control characters or undecodable bytes: a damaged line, never an indicator."""
_HASH_BY_LENGTH = {length: name for name, length in HASH_LENGTHS.items()}


def guess_type(value: str) -> str | None:
    """The indicator type a bare value most plausibly is, or None."""
    text = refang(value)
    if _HEX.match(text) and len(text) in _HASH_BY_LENGTH:
        return _HASH_BY_LENGTH[len(text)]
    try:
        ipaddress.ip_network(text, strict=False)
        return "ip"
    except ValueError:
        pass
    if "://" in text[:12]:
        return "url"
    if "@" in text:
        return "email"
    if "/" in text:
        return "url"
    return "domain" if "." in text else None


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _open_text(path: Path) -> IO[str]:
    """The feed as text: UTF-8 (BOM or not), UTF-16 with a BOM (Notepad's "Unicode"), gzip.

    A file whose lines mostly hold NUL bytes and that is not UTF-16 is binary: refused as a
    whole rather than mined for byte runs that happen to look like URLs or domains. A few
    damaged lines in a text feed are refused one by one by the loaders.
    """
    try:
        raw: IO[bytes] = path.open("rb")
        if raw.read(2) == b"\x1f\x8b":
            raw.close()
            raw = cast(IO[bytes], gzip.open(path, "rb"))  # noqa: SIM115 (returned)
        else:
            raw.seek(0)
        head = raw.read(8192)
        raw.seek(0)
    except (OSError, EOFError) as exc:
        raise FeedError(f"{path}: cannot read: {exc}") from exc
    if head.startswith(_UTF16_BOMS):
        return io.TextIOWrapper(raw, encoding="utf-16", errors="replace", newline="")
    if _mostly_binary(head):
        raw.close()
        raise FeedError(f"{path}: binary data, not a text list or CSV of indicators")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _mostly_binary(head: bytes) -> bool:
    """True when ``head`` is not text: over a tenth of it control characters or bytes that are
    not UTF-8, or most of its lines holding a NUL byte."""
    if b"\x00" not in head:
        return False
    text = head.decode("utf-8", "replace")
    if len(_NOT_TEXT.findall(text)) * 10 > len(text):
        return True
    lines = head.splitlines() or [head]
    return sum(b"\x00" in line for line in lines) * 2 > len(lines)


def _declared(spec: FeedSpec) -> str | None:
    if spec.type in (None, "auto"):
        return None
    return canonical_type(spec.type)


@register_loader("list")
def load_list(spec: FeedSpec, report: FeedReport) -> Iterator[Indicator]:
    """Indicators of a plain list, one per line."""
    declared = _declared(spec)
    info = IndicatorInfo(source=spec.source_name(), reference=spec.source_name())
    with _open_text(spec.path) as handle:
        for number, line in enumerate(handle, 1):
            value = (
                line.split("#", 1)[0].strip()
                if not line.lstrip().startswith("http")
                else (line.strip())
            )
            if not value:
                continue
            report.objects += 1
            if _NOT_TEXT.search(value):
                report.warn("list-value", f"not text: {value[:60]!r}", line=number)
                continue
            kind = declared or guess_type(value)
            if kind is None:
                report.warn("list-value", f"cannot tell the type of {value!r}", line=number)
                continue
            try:
                canonical = normalize(kind, value)
            except ValueError as exc:
                report.warn("list-value", str(exc), line=number)
                continue
            report.count(kind)
            report.indicators += 1
            yield Indicator(kind, canonical, info)


_CONTEXT_COLUMNS = ("id", "uuid", "event_id", "confidence", "level", "valid_from", "valid_until",
                    "labels", "category", "tags", "attack", "description", "comment")  # fmt: skip
_FALSE = {"", "0", "false", "no", "n", "f"}


def _typed_values(named: str, value: str) -> list[tuple[str, str]]:
    """(type, raw value) pairs for a type column: Vedette's names or MISP's (``ip-dst|port``)."""
    try:
        return [(canonical_type(named), value)]
    except ValueError:
        pass
    from vedette.intel.misp import misp_types

    parts = misp_types().get(named.strip().lower())
    if parts is None:
        raise ValueError(f"unsupported indicator type {named!r}")
    values = value.split("|") if len(parts) > 1 else [value]
    if len(values) != len(parts):
        raise ValueError(f"{named} value {value!r} does not have {len(parts)} parts")
    return [(kind, part) for kind, part in zip(parts, values, strict=True) if kind is not None]


@register_loader("csv")
def load_csv(spec: FeedSpec, report: FeedReport) -> Iterator[Indicator]:
    """Indicators of a CSV file with a header row (also MISP's CSV export)."""
    declared = _declared(spec)
    shared: dict[tuple[object, ...], IndicatorInfo] = {}
    with _open_text(spec.path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None) or []
        columns = {c.strip().lower(): i for i, c in enumerate(header)}
        value_at = next((columns[c] for c in _VALUE_COLUMNS if c in columns), None)
        if value_at is None:
            raise FeedError(f"{spec.path}: CSV needs a value column (one of {_VALUE_COLUMNS})")
        type_at = columns.get("type")
        ids_at = columns.get("to_ids")
        has_context = any(c in columns for c in _CONTEXT_COLUMNS)
        plain = IndicatorInfo(source=spec.source_name(), reference=spec.source_name())

        def col(row: list[str], name: str) -> str:
            at = columns.get(name)
            return row[at].strip() if at is not None and at < len(row) else ""

        for row in reader:
            report.objects += 1
            if any("\x00" in cell for cell in row):
                report.warn("csv-row", "NUL byte in the row: row refused", line=reader.line_num)
                continue
            value = row[value_at].strip() if value_at < len(row) else ""
            if not value:
                continue
            not_for_ids = (
                ids_at is not None and ids_at < len(row) and row[ids_at].strip().lower() in _FALSE
            )
            if spec.to_ids_only and not_for_ids:
                report.skipped_not_for_ids += 1
                continue
            try:
                if declared is not None:
                    typed = [(declared, value)]
                else:
                    named = (
                        row[type_at].strip() if type_at is not None and type_at < len(row) else ""
                    )
                    guessed = None if named else guess_type(value)
                    if not named and guessed is None:
                        raise ValueError(f"cannot tell the type of {value!r}")
                    typed = _typed_values(named, value) if named else [(str(guessed), value)]
                canonical = [(kind, normalize(kind, raw)) for kind, raw in typed]
            except ValueError as exc:
                if "unsupported indicator type" in str(exc):
                    report.skipped_other_types += 1
                else:
                    report.warn("csv-value", str(exc), line=reader.line_num)
                continue
            if not canonical:
                report.skipped_other_types += 1
                continue
            info = (
                _row_info(spec, report, row, col, reader.line_num, shared) if has_context else plain
            )
            report.indicators += 1
            for kind, normalized in canonical:
                report.count(kind)
                yield Indicator(kind, normalized, info)


def _row_info(
    spec: FeedSpec,
    report: FeedReport,
    row: list[str],
    col: Callable[[list[str], str], str],
    number: int,
    shared: dict[tuple[object, ...], IndicatorInfo],
) -> IndicatorInfo:
    get = col
    confidence_text = get(row, "confidence")
    confidence: int | None = None
    if confidence_text:
        try:
            confidence = max(0, min(100, int(float(confidence_text))))
        except ValueError:
            report.warn("csv-value", f"confidence {confidence_text!r} is not a number", line=number)
    level = get(row, "level").lower() or None
    if level is not None and level not in LEVELS:
        report.warn("csv-value", f"level {level!r} is not a Sigma level", line=number)
        level = None
    event_id = get(row, "event_id")
    key = (
        get(row, "id") or get(row, "uuid") or None,
        event_id,
        get(row, "category"),
        get(row, "comment"),
        confidence,
        level,
        get(row, "valid_from"),
        get(row, "valid_until"),
        get(row, "labels"),
        get(row, "tags"),
        get(row, "attack"),
        get(row, "description"),
    )
    # Rows that share all their context share one IndicatorInfo (memory for big feeds).
    info = shared.get(key)
    if info is None:
        info = IndicatorInfo(
            source=spec.source_name(),
            id=get(row, "id") or get(row, "uuid") or None,
            reference=f"MISP event {event_id}" if event_id else spec.source_name(),
            description=get(row, "description") or get(row, "comment") or None,
            confidence=confidence,
            level=level,
            valid_from=parse_time(get(row, "valid_from")),
            valid_until=parse_time(get(row, "valid_until")),
            labels=tuple(x for x in [*_SPLIT.split(get(row, "labels")), get(row, "category")] if x),
            tags=tuple(x for x in re.split(r"[;|]+", get(row, "tags")) if x.strip()),
            attack=tuple(
                AttackRef(x.upper()) for x in _SPLIT.split(get(row, "attack")) if x.strip()
            ),
        )
        if key[0] is None:
            shared[key] = info
    return info
