"""STIX 2.0 / 2.1 indicator feeds.

Each ``indicator`` object with ``pattern_type`` ``stix`` (2.0 has none) is parsed with
:mod:`vedette.intel.stix_pattern`; every alternative of its pattern that holds within one event
becomes an indexed observable sharing the indicator's context. ATT&CK techniques come from the
indicator's own external references, from ``indicates`` relationships to attack-patterns with a
``mitre-attack`` id, and tactics from ``mitre-attack`` kill chain phases (as ``attack.<tactic>``
tags). Whatever cannot be evaluated is reported with the reason.

Sample (OASIS, ``indicator-for-c2-ip-address.json``)::

    {"type": "indicator", "spec_version": "2.1", "id": "indicator--33fe3b22-...",
     "pattern": "[ipv4-addr:value = '10.0.0.0']", "pattern_type": "stix",
     "valid_from": "2014-05-08T09:00:00.000000Z", "indicator_types": ["malicious-activity"]}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from vedette.events import AttackRef
from vedette.intel.attack_table import read_json_file
from vedette.intel.feeds import FeedSpec, parse_time, register_loader
from vedette.intel.model import FeedReport, Indicator, IndicatorInfo, normalize
from vedette.intel.stix_pattern import PatternError, Unsupported, parse_pattern, reduce_pattern

_HASH_TYPES = ("md5", "sha1", "sha256", "sha512")


def _narrows(problem: Unsupported, atoms: list[tuple[str, str]]) -> bool:
    """Whether ``problem`` only narrows an observable that ``atoms`` already match."""
    if problem.path.startswith("file:"):
        return any(t in _HASH_TYPES for t, _ in atoms)
    if problem.path.startswith("network-traffic:"):
        return any(t == "ip" for t, _ in atoms)
    return False


def _attack_ids(obj: Mapping[str, Any]) -> list[str]:
    return [
        str(ref["external_id"]).upper()
        for ref in obj.get("external_references") or ()
        if ref.get("source_name") in ("mitre-attack", "mitre-enterprise-attack")
        and str(ref.get("external_id", "")).upper().startswith("T")
    ]


def _objects(data: Any) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping):
        found = data.get("objects") if data.get("type") == "bundle" else [data]
    else:
        found = data
    return [o for o in found or () if isinstance(o, Mapping)]


@register_loader("stix")
def load_stix(spec: FeedSpec, report: FeedReport) -> Iterator[Indicator]:
    """Indicators of a STIX 2.x bundle (or a single indicator object)."""
    objects = _objects(read_json_file(spec.path))
    by_id = {str(o.get("id")): o for o in objects}
    indicates: dict[str, list[Mapping[str, Any]]] = {}
    for rel in objects:
        if rel.get("type") == "relationship" and rel.get("relationship_type") == "indicates":
            target = by_id.get(str(rel.get("target_ref")))
            if target is not None:
                indicates.setdefault(str(rel.get("source_ref")), []).append(target)
    source = spec.source_name()
    for obj in objects:
        report.objects += 1
        if obj.get("type") != "indicator":
            report.skipped_other_types += 1
            continue
        yield from _indicator(obj, indicates.get(str(obj.get("id")), []), source, report)


def _info(obj: Mapping[str, Any], targets: list[Mapping[str, Any]], source: str) -> IndicatorInfo:
    techniques = _attack_ids(obj)
    context: list[str] = []
    for target in targets:
        techniques.extend(_attack_ids(target))
        if target.get("name"):
            context.append(f"{target.get('type')}:{target['name']}")
    tactic_tags = [
        f"attack.{phase['phase_name']}"
        for phase in obj.get("kill_chain_phases") or ()
        if phase.get("kill_chain_name") in ("mitre-attack", "mitre-enterprise-attack")
    ]
    labels = list(obj.get("indicator_types") or ()) + list(obj.get("labels") or ())
    confidence = obj.get("confidence")
    return IndicatorInfo(
        source=source,
        id=str(obj.get("id")),
        reference=str(obj.get("name") or obj.get("id")),
        description=obj.get("description"),
        confidence=int(confidence) if isinstance(confidence, int | float) else None,
        valid_from=parse_time(obj.get("valid_from")),
        valid_until=parse_time(obj.get("valid_until")),
        labels=tuple(dict.fromkeys(labels)),
        tags=tuple(dict.fromkeys(tactic_tags + context)),
        attack=tuple(AttackRef(t) for t in dict.fromkeys(techniques)),
    )


def _indicator(
    obj: Mapping[str, Any],
    targets: list[Mapping[str, Any]],
    source: str,
    report: FeedReport,
) -> Iterator[Indicator]:
    oid = str(obj.get("id"))
    if obj.get("revoked"):
        report.withdraw(oid)
        return
    pattern_type = obj.get("pattern_type", "stix")
    if pattern_type != "stix":
        report.warn("stix-pattern-type", f"{oid}: pattern_type {pattern_type!r} is not evaluated")
        return
    pattern = str(obj.get("pattern", ""))
    try:
        alternatives = reduce_pattern(parse_pattern(pattern))
    except PatternError as exc:
        report.warn("stix-pattern-syntax", f"{oid}: {exc}: {pattern[:200]}")
        return
    except RecursionError:  # this indicator only, never the feed
        report.warn("stix-pattern-syntax", f"{oid}: pattern nested too deeply to read")
        return
    base = _info(obj, targets, source)
    produced = 0
    for alternative in alternatives:
        atoms: list[tuple[str, str]] = []
        problems: list[Unsupported] = []
        for part in alternative:
            if isinstance(part, Unsupported):
                problems.append(part)
                continue
            try:
                atoms.append((part[0], normalize(part[0], part[1])))
            except ValueError as exc:
                problems.append(Unsupported(str(exc), part[0]))
        # Properties that only narrow an observable Vedette does match (a file's name beside its
        # hash; the port or declared type of a connection beside its address, as MISP's STIX
        # export writes them) are relaxed: the hash or address decides, and the report says so.
        relaxed = [p for p in problems if _narrows(p, atoms)]
        if relaxed and len(relaxed) == len(problems) and atoms:
            paths = ", ".join(sorted({p.path for p in relaxed}))
            report.note("stix-pattern-relaxed", f"{oid}: not checked: {paths}: {pattern}")
            problems = []
        if problems or not atoms:
            why = "; ".join(f"{p.path + ': ' if p.path else ''}{p.reason}" for p in problems)
            report.warn(
                "stix-pattern-unsupported", f"{oid}: {why or 'nothing to match'}: {pattern}"
            )
            continue
        first, *rest = atoms
        info = base if not rest else _with_requires(base, tuple(rest))
        report.count(first[0])
        produced += 1
        yield Indicator(first[0], first[1], info)
    if produced:
        report.indicators += 1


def _with_requires(base: IndicatorInfo, rest: tuple[tuple[str, str], ...]) -> IndicatorInfo:
    return replace(base, requires=rest)
