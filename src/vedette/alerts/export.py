"""An incident's observables and techniques for partner organisations: STIX 2.1 and MISP.

Both take the incident *as the caller sees it* (:func:`vedette.store.state.incidents.
incident_detail`), so a participating unit exports only what was shared with it. Nothing of
the events, hosts, users or units goes out: the observables, the ATT&CK techniques and the
severity (not the title: titles made from alerts name hosts). Ids are derived from the
content (UUID v5), so exporting twice gives the same objects and a partner's import
deduplicates them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

_NAMESPACE: Final = uuid.UUID("7f1b0c2e-5d3a-4c1e-9a57-766564657474")

_STIX_PATHS: Final = {
    "ip": None,  # ipv4-addr or ipv6-addr by the value
    "domain": "domain-name:value",
    "url": "url:value",
    "email": "email-addr:value",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
    "sha512": "file:hashes.'SHA-512'",
}
_MISP_TYPES: Final = {
    "ip": ("ip-dst", "Network activity"),
    "domain": ("domain", "Network activity"),
    "url": ("url", "Network activity"),
    "email": ("email-src", "Payload delivery"),
    "md5": ("md5", "Payload delivery"),
    "sha1": ("sha1", "Payload delivery"),
    "sha256": ("sha256", "Payload delivery"),
    "sha512": ("sha512", "Payload delivery"),
}
_THREAT_LEVEL: Final = {"critical": "1", "high": "1", "medium": "2", "low": "3"}


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NAMESPACE, '|'.join((kind, *parts)))}"


def _stix_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stix_pattern(kind: str, value: str) -> str | None:
    """The STIX pattern matching one observable, or None for a type STIX cannot say."""
    if kind not in _STIX_PATHS:
        return None
    path = _STIX_PATHS[kind]
    if path is None:
        path = "ipv6-addr:value" if ":" in value else "ipv4-addr:value"
    return f"[{path} = {_stix_string(value)}]"


def _name(incident: dict[str, Any]) -> str:
    """A name that says what, never where: titles made from alerts carry host names."""
    techniques = ", ".join(str(t.get("id")) for t in incident.get("attack") or [] if t.get("id"))
    name = f"Incident {incident['id']} ({incident.get('severity', 'unknown')})"
    return f"{name}: {techniques}" if techniques else name


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stix_bundle(incident: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """A STIX 2.1 bundle: a grouping, one indicator per observable, one attack-pattern per
    technique, and ``indicates`` relationships between them."""
    stamp = _stamp(now or datetime.now(UTC))
    objects: list[dict[str, Any]] = []
    indicators: list[str] = []
    for item in incident.get("observables") or []:
        pattern = stix_pattern(str(item["type"]), str(item["value"]))
        if pattern is None:
            continue
        ident = _id("indicator", pattern)
        indicators.append(ident)
        objects.append(
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": ident,
                "created": stamp,
                "modified": stamp,
                "name": f"{item['type']} {item['value']}",
                "indicator_types": ["malicious-activity"],
                "pattern": pattern,
                "pattern_type": "stix",
                "valid_from": stamp,
            }
        )
    patterns: list[str] = []
    for technique in incident.get("attack") or []:
        technique_id = str(technique.get("id"))
        ident = _id("attack-pattern", technique_id)
        patterns.append(ident)
        objects.append(
            {
                "type": "attack-pattern",
                "spec_version": "2.1",
                "id": ident,
                "created": stamp,
                "modified": stamp,
                "name": technique.get("name") or technique_id,
                "external_references": [
                    {"source_name": "mitre-attack", "external_id": technique_id}
                ],
            }
        )
    relations = [
        {
            "type": "relationship",
            "spec_version": "2.1",
            "id": _id("relationship", source, target),
            "created": stamp,
            "modified": stamp,
            "relationship_type": "indicates",
            "source_ref": source,
            "target_ref": target,
        }
        for source in indicators
        for target in patterns
    ]
    grouping: dict[str, Any] = {
        "type": "grouping",
        "spec_version": "2.1",
        "id": _id("grouping", str(incident["id"])),
        "created": stamp,
        "modified": stamp,
        "name": _name(incident),
        "context": "suspicious-activity",
        "object_refs": indicators + patterns or [_id("note", str(incident["id"]))],
    }
    return {
        "type": "bundle",
        "id": _id("bundle", grouping["id"], stamp),
        "objects": [grouping, *objects, *relations],
    }


def misp_event(incident: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """A MISP event: one ``to_ids`` attribute per observable, ATT&CK techniques as galaxy tags."""
    moment = now or datetime.now(UTC)
    attributes = []
    for item in incident.get("observables") or []:
        kind = str(item["type"])
        if kind not in _MISP_TYPES:
            continue
        misp_type, category = _MISP_TYPES[kind]
        attributes.append(
            {
                "uuid": str(uuid.uuid5(_NAMESPACE, f"attribute|{kind}|{item['value']}")),
                "type": misp_type,
                "category": category,
                "value": str(item["value"]),
                "to_ids": True,
            }
        )
    tags = []
    for technique in incident.get("attack") or []:
        technique_id = technique.get("id")
        if technique_id:
            name = technique.get("name") or technique_id
            tags.append({"name": f'misp-galaxy:mitre-attack-pattern="{name} - {technique_id}"'})
    return {
        "Event": {
            "uuid": str(uuid.uuid5(_NAMESPACE, f"event|{incident['id']}")),
            "info": _name(incident),
            "date": moment.astimezone(UTC).date().isoformat(),
            "threat_level_id": _THREAT_LEVEL.get(str(incident.get("severity")), "4"),
            "analysis": "1",
            "distribution": "0",
            "published": False,
            "Attribute": attributes,
            "Tag": tags,
        }
    }
