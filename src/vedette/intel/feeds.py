"""Indicator feeds: formats, sniffing and per-feed settings.

A feed is a file (STIX 2.x bundle, MISP event JSON or MISP feed manifest, CSV, plain list)
plus its settings (:class:`FeedSpec`): the source name shown to analysts, a declared type for
plain lists, a level that overrides the indicators' confidence, whether MISP attributes not
flagged ``to_ids`` are used. A YAML feed list names several feeds with their settings::

    feeds:
      - path: cert-feed/manifest.json
        source: National CERT
        level: critical
      - path: blocked-ips.txt
        type: ip
      - path: fresh-cert-bundle.json
        ignore_valid_from: true     # retro-hunt: match events older than valid_from too
      - path: odd-feed.txt
        force_broad: true           # keep 0.0.0.0/0 and ::/0 (refused by default)

Loaders are registered by format name in :data:`FEED_LOADERS`; each yields
:class:`~vedette.intel.model.Indicator` objects and records what it skipped in a
:class:`~vedette.intel.model.FeedReport`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from vedette.errors import FeedError
from vedette.events import LEVELS
from vedette.intel.attack_table import read_json_file
from vedette.intel.model import FeedReport, Indicator, IndicatorInfo, canonical_type
from vedette.intel.vetting import Vetter


@dataclass(slots=True, frozen=True)
class FeedSpec:
    """One feed and its settings."""

    path: Path
    format: str | None = None
    source: str | None = None
    type: str | None = None
    level: str | None = None
    confidence: int | None = None
    to_ids_only: bool = True
    ignore_valid_from: bool = False
    force_broad: bool = False
    """Keep networks that cover every address (``0.0.0.0/0``, ``::/0``), refused by default:
    one such line in a feed turns every event with an address into an alert."""
    in_folder: bool = False
    """Found by walking a folder: if unreadable, it is reported and the other feeds load."""

    def source_name(self) -> str:
        """The source name shown in detections (the file name when none is set)."""
        return self.source or self.path.name

    def validate(self) -> None:
        """Raise :class:`FeedError` on a setting that cannot be honoured."""
        if self.level is not None and self.level.lower() not in LEVELS:
            raise FeedError(f"{self.path}: unknown level {self.level!r} (use one of {LEVELS})")
        if self.type is not None and self.type != "auto":
            try:
                canonical_type(self.type)
            except ValueError as exc:
                raise FeedError(f"{self.path}: {exc}") from exc


Loader = Callable[[FeedSpec, FeedReport], Iterator[Indicator]]
FEED_LOADERS: dict[str, Loader] = {}
"""Feed loaders by format name (``stix``, ``misp``, ``misp-manifest``, ``csv``, ``list``)."""


def register_loader(name: str) -> Callable[[Loader], Loader]:
    """Register a feed loader; registering a name twice is an error."""

    def wrap(loader: Loader) -> Loader:
        if name in FEED_LOADERS:
            raise ValueError(f"feed format {name!r} registered twice")
        FEED_LOADERS[name] = loader
        return loader

    return wrap


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text or epoch seconds; None when absent or bad."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            return datetime.fromtimestamp(int(value), tz=UTC)
        text = str(value).strip().replace("Z", "+00:00")
        if "." in text:  # Python accepts at most 6 fractional digits
            head, _, tail = text.partition(".")
            digits = len(tail) - len(tail.lstrip("0123456789"))
            text = f"{head}.{tail[:digits][:6]}{tail[digits:]}"
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def sniff_format(path: Path) -> str:
    """The feed format of ``path`` from its name and first bytes."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if not name.endswith(".json"):
        return "list"
    data = read_json_file(path)
    return json_format(data, path)


def json_format(data: Any, path: Path) -> str:
    """Which JSON feed format ``data`` is."""
    if isinstance(data, dict):
        if data.get("type") == "bundle" or "--" in str(data.get("id", "")):
            return "stix"
        if "Event" in data or "Attribute" in data or "response" in data:
            return "misp"
        if data and all(isinstance(v, dict) and "info" in v for v in data.values()):
            return "misp-manifest"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "Event" in data[0]:
        return "misp"
    raise FeedError(f"{path}: JSON that is neither a STIX bundle nor a MISP event or manifest")


def read_feed_list(path: Path) -> list[FeedSpec]:
    """Feeds named by a YAML feed list (paths relative to the list's folder)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FeedError(f"{path}: cannot read feed list: {exc}") from exc
    entries = data.get("feeds") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FeedError(f"{path}: a feed list needs a top-level 'feeds:' list")
    specs: list[FeedSpec] = []
    for number, entry in enumerate(entries, 1):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry:
            raise FeedError(f"{path}: feed #{number} needs a 'path'")
        unknown = set(entry) - {"path", "format", "source", "type", "level", "confidence",
                                "to_ids_only", "ignore_valid_from", "force_broad"}  # fmt: skip
        if unknown:
            raise FeedError(f"{path}: feed #{number}: unknown setting(s) {sorted(unknown)}")
        spec = FeedSpec(
            path=(path.parent / str(entry["path"])).resolve(),
            format=entry.get("format"),
            source=entry.get("source"),
            type=entry.get("type"),
            level=entry.get("level"),
            confidence=entry.get("confidence"),
            to_ids_only=bool(entry.get("to_ids_only", True)),
            ignore_valid_from=bool(entry.get("ignore_valid_from", False)),
            force_broad=bool(entry.get("force_broad", False)),
        )
        spec.validate()
        specs.append(spec)
    return specs


def expand_feed_paths(paths: list[str | Path | FeedSpec]) -> list[FeedSpec]:
    """Feed specs for paths, feed lists (``.yaml``) and folders (every feed file inside)."""
    specs: list[FeedSpec] = []
    for item in paths:
        if isinstance(item, FeedSpec):
            item.validate()
            specs.append(item)
            continue
        path = Path(item)
        if not path.exists():
            raise FeedError(f"{path}: no such feed file")
        if path.is_dir():
            manifest = path / "manifest.json"
            if manifest.exists():
                specs.append(FeedSpec(manifest, format="misp-manifest"))
                continue
            found = [
                child
                for child in sorted(path.rglob("*"))
                if child.is_file() and child.suffix.lower() in (".json", ".csv", ".txt", ".gz")
            ]
            if not found:  # a wrong folder must not read as "0 indicators, nothing wrong"
                raise FeedError(f"{path}: no feed files (.json, .csv, .txt, .gz) in this folder")
            specs.extend(FeedSpec(child, in_folder=True) for child in found)
        elif path.suffix.lower() in (".yaml", ".yml"):
            specs.extend(read_feed_list(path))
        else:
            specs.append(FeedSpec(path))
    return specs


def iter_feed(spec: FeedSpec, report: FeedReport | None = None) -> Iterator[Indicator]:
    """Every indicator of one feed, streamed; ``report`` records what was and was not loaded."""
    from vedette.intel import flatfeeds, misp, stix  # noqa: F401  (registers the loaders)

    fmt = spec.format or sniff_format(spec.path)
    loader = FEED_LOADERS.get(fmt)
    if loader is None:
        raise FeedError(f"{spec.path}: unknown feed format {fmt!r} (known: {sorted(FEED_LOADERS)})")
    if report is None:
        report = FeedReport(path=str(spec.path), format=fmt, source=spec.source_name())
    report.format = fmt
    vetter = Vetter(report, force_broad=spec.force_broad)
    check = vetter.check
    indicators = loader(spec, report)
    if spec.level is None and spec.confidence is None and not spec.ignore_valid_from:
        for indicator in indicators:
            if check(indicator):
                yield indicator
        vetter.finish()
        return
    cache: dict[int, tuple[IndicatorInfo, IndicatorInfo]] = {}
    for indicator in indicators:
        if not check(indicator):
            continue
        pair = cache.get(id(indicator.info))
        if pair is None or pair[0] is not indicator.info:
            info = replace(
                indicator.info,
                level=spec.level.lower() if spec.level else indicator.info.level,
                confidence=indicator.info.confidence
                if indicator.info.confidence is not None
                else spec.confidence,
                valid_from=None if spec.ignore_valid_from else indicator.info.valid_from,
            )
            pair = (indicator.info, info)
            cache[id(indicator.info)] = pair
        yield Indicator(indicator.type, indicator.value, pair[1])
    vetter.finish()


def load_feed(spec: FeedSpec) -> tuple[list[Indicator], FeedReport]:
    """Every indicator of one feed as a list, with the load report."""
    report = FeedReport(path=str(spec.path), format=spec.format or "", source=spec.source_name())
    return list(iter_feed(spec, report)), report
