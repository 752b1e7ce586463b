"""MISP event JSON and MISP feed manifests.

An event (``{"Event": {...}}``, a bare event, a list of them or a REST ``response``) yields one
indicator per usable attribute, including attributes inside objects. Only attributes flagged
``to_ids`` are used unless the feed says otherwise; deleted ones never. Which attribute types
are matched, and how composite values split, is data: ``data/misp-types.yaml``. ATT&CK
techniques come from galaxy tags (``misp-galaxy:mitre-attack-pattern="PowerShell - T1059.001"``)
and galaxy clusters; confidence from ``osint:certainty`` tags.

A feed manifest (``manifest.json``: event uuid -> summary) names the events stored beside it as
``<uuid>.json``.

Sample (PyMISP tests, ``existing_event.json``)::

    {"Event": {"id": "9747", "info": "OSINT - Sednit update: How Fancy Bear Spent the Year",
     "Attribute": [{"type": "domain", "value": "...", "to_ids": true, "uuid": "..."}], ...}}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vedette.errors import FeedError
from vedette.events import AttackRef
from vedette.intel.attack_table import read_json_file
from vedette.intel.feeds import FeedSpec, register_loader
from vedette.intel.model import FeedReport, Indicator, IndicatorInfo, normalize

_GALAXY_TECHNIQUE = re.compile(
    r'^misp-galaxy:mitre-[a-z-]*attack-pattern="[^"]*?(T\d{4}(?:\.\d{3})?)"$', re.IGNORECASE
)
_CERTAINTY = re.compile(r'^osint:certainty="(\d{1,3})"$')


@cache
def misp_types() -> dict[str, tuple[str | None, ...]]:
    """MISP attribute type -> matched type of each part of its value."""
    text = resources.files("vedette.intel").joinpath("data/misp-types.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {str(k): tuple(v) for k, v in data.items()}


def _events(data: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _events(item)
    elif isinstance(data, Mapping):
        if "response" in data:
            yield from _events(data["response"])
        elif isinstance(data.get("Event"), Mapping):
            yield data["Event"]
        elif "Attribute" in data or "Object" in data or "info" in data:
            yield data


def _tag_names(container: Mapping[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in container.get("Tag") or () if t.get("name")]


def _techniques(tags: Iterable[str], galaxies: Iterable[Mapping[str, Any]]) -> list[str]:
    found: list[str] = []
    for tag in tags:
        match = _GALAXY_TECHNIQUE.match(tag)
        if match:
            found.append(match.group(1).upper())
    for galaxy in galaxies:
        if "attack-pattern" not in str(galaxy.get("type", "")):
            continue
        for cluster in galaxy.get("GalaxyCluster") or ():
            meta = cluster.get("meta") or {}
            ids = meta.get("external_id") or []
            for ext in ids if isinstance(ids, list) else [ids]:
                if str(ext).upper().startswith("T"):
                    found.append(str(ext).upper())
            match = _GALAXY_TECHNIQUE.match(str(cluster.get("tag_name", "")))
            if match:
                found.append(match.group(1).upper())
    return list(dict.fromkeys(found))


def _certainty(tags: Iterable[str]) -> int | None:
    for tag in tags:
        match = _CERTAINTY.match(tag)
        if match:
            return min(int(match.group(1)), 100)
    return None


@register_loader("misp")
def load_misp(spec: FeedSpec, report: FeedReport) -> Iterator[Indicator]:
    """Indicators of one or more MISP events in one JSON file."""
    for event in _events(read_json_file(spec.path)):
        yield from event_indicators(event, spec, report)


@register_loader("misp-manifest")
def load_misp_manifest(spec: FeedSpec, report: FeedReport) -> Iterator[Indicator]:
    """Indicators of every event a MISP feed manifest names (``<uuid>.json`` beside it)."""
    manifest = read_json_file(spec.path)
    if not isinstance(manifest, Mapping):
        raise FeedError(f"{spec.path}: a MISP manifest is an object of event uuid -> summary")
    folder = Path(spec.path).parent
    for uuid in manifest:
        path = folder / f"{uuid}.json"
        if not path.exists():
            report.warn("misp-event-missing", f"{path.name} named by the manifest is absent")
            continue
        try:
            data = read_json_file(path)
        except FeedError as exc:
            report.warn("misp-event-unreadable", str(exc))
            continue
        for event in _events(data):
            yield from event_indicators(event, spec, report)


def event_indicators(
    event: Mapping[str, Any], spec: FeedSpec, report: FeedReport
) -> Iterator[Indicator]:
    """Indicators of one MISP event (attributes and object attributes)."""
    event_tags = _tag_names(event)
    galaxies = list(event.get("Galaxy") or ())
    event_ref = f"MISP event {event.get('id') or event.get('uuid') or '?'}"
    base = _Context(
        source=spec.source_name(),
        reference=event_ref,
        info_text=str(event.get("info") or ""),
        tags=event_tags,
        techniques=_techniques(event_tags, galaxies),
        confidence=_certainty(event_tags),
    )
    for attribute in event.get("Attribute") or ():
        yield from _attribute(attribute, base, spec, report, None)
    for obj in event.get("Object") or ():
        if obj.get("deleted"):
            continue
        for attribute in obj.get("Attribute") or ():
            yield from _attribute(attribute, base, spec, report, str(obj.get("name") or ""))


@dataclass(slots=True, frozen=True, kw_only=True)
class _Context:
    """What every attribute of one event shares."""

    source: str
    reference: str
    info_text: str
    tags: list[str]
    techniques: list[str]
    confidence: int | None


def _attribute(
    attribute: Mapping[str, Any],
    ctx: _Context,
    spec: FeedSpec,
    report: FeedReport,
    object_name: str | None,
) -> Iterator[Indicator]:
    report.objects += 1
    if attribute.get("deleted"):
        if attribute.get("uuid"):
            report.withdraw(str(attribute["uuid"]))
        return
    kind = str(attribute.get("type", ""))
    parts = misp_types().get(kind)
    if parts is None:
        report.skipped_other_types += 1
        return
    if spec.to_ids_only and not attribute.get("to_ids"):
        report.skipped_not_for_ids += 1
        return
    raw = str(attribute.get("value", ""))
    values = raw.split("|") if len(parts) > 1 else [raw]
    if len(values) != len(parts):
        report.warn("misp-value", f"{kind} attribute {attribute.get('uuid')}: value {raw!r}")
        return
    tags = list(ctx.tags) + [t for t in _tag_names(attribute) if t not in ctx.tags]
    techniques = ctx.techniques + [
        t for t in _techniques(_tag_names(attribute), attribute.get("Galaxy") or ())
        if t not in ctx.techniques
    ]  # fmt: skip
    description = " / ".join(
        x for x in (ctx.info_text, object_name and f"object {object_name}",
                    attribute.get("comment")) if x
    )  # fmt: skip
    certainty = _certainty(_tag_names(attribute))
    info = IndicatorInfo(
        source=ctx.source,
        id=str(attribute["uuid"]) if attribute.get("uuid") else None,
        reference=ctx.reference,
        description=description or None,
        confidence=certainty if certainty is not None else ctx.confidence,
        valid_from=None,
        valid_until=None,
        labels=tuple(x for x in (str(attribute.get("category") or ""), kind) if x),
        tags=tuple(tags),
        attack=tuple(AttackRef(t) for t in techniques),
    )
    produced = 0
    for matched_type, value in zip(parts, values, strict=True):
        if matched_type is None:
            continue
        try:
            canonical = normalize(matched_type, value)
        except ValueError as exc:
            report.warn("misp-value", f"{kind} attribute {attribute.get('uuid')}: {exc}")
            continue
        report.count(matched_type)
        produced += 1
        yield Indicator(matched_type, canonical, info)
    if produced:
        report.indicators += 1
