"""Derive Vedette's compact ATT&CK table from an Enterprise ATT&CK STIX bundle.

The table keeps what an analyst needs offline (technique and sub-technique names, tactics and a
short description, deprecated and revoked techniques, groups and software with the techniques
they use) and nothing else, so it ships inside the package at about a hundred KB.
``scripts/build_attack_table.py`` writes it; :meth:`vedette.intel.attack.AttackKB.load` also
builds it on the fly from a user-supplied bundle.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vedette.errors import FeedError

TABLE_FORMAT = "vedette-attack-table/1"

MITRE_NOTICE = (
    "© 2025 The MITRE Corporation. This work is reproduced and distributed with the permission "
    "of The MITRE Corporation."
)
MITRE_LICENSE = (
    "The MITRE Corporation (MITRE) hereby grants you a non-exclusive, royalty-free license to use "
    "ATT&CK® for research, development, and commercial purposes. Any copy you make for such "
    "purposes is authorized provided that you reproduce MITRE's copyright designation and this "
    "license in any such copy."
)
MITRE_DISCLAIMER = (
    "MITRE does not claim ATT&CK enumerates all possibilities for the types of actions and "
    "behaviors documented as part of its adversary model and framework of techniques. Using the "
    "information contained within ATT&CK to address or cover full categories of techniques will "
    "not guarantee full defensive coverage as there may be undisclosed techniques or variations "
    "on existing techniques not documented by ATT&CK. ALL DOCUMENTS AND THE INFORMATION "
    'CONTAINED THEREIN ARE PROVIDED ON AN "AS IS" BASIS AND THE CONTRIBUTOR, THE ORGANIZATION '
    "HE/SHE REPRESENTS OR IS SPONSORED BY (IF ANY), THE MITRE CORPORATION, ITS BOARD OF "
    "TRUSTEES, OFFICERS, AGENTS, AND EMPLOYEES, DISCLAIM ALL WARRANTIES, EXPRESS OR IMPLIED, "
    "INCLUDING BUT NOT LIMITED TO ANY WARRANTY THAT THE USE OF THE INFORMATION THEREIN WILL NOT "
    "INFRINGE ANY RIGHTS OR ANY IMPLIED WARRANTIES OF MERCHANTABILITY OR FITNESS FOR A PARTICULAR "
    "PURPOSE."
)

_KILL_CHAIN = "mitre-attack"

DESCRIPTION_CHARS = 320
"""A technique's description is its first paragraph, cut to about this many characters."""
_CITATION = re.compile(r"\s*\(Citation:[^()]*(?:\([^()]*\)[^()]*)*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def short_description(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """The first paragraph of an ATT&CK description as plain text: citations ``(Citation:
    ...)``, markdown links (their text kept), HTML tags and emphasis removed, whitespace
    folded, and cut to ``limit`` characters at a sentence end (else a word end, with "…")."""
    paragraph = text.strip().split("\n\n", 1)[0]
    plain = _CITATION.sub("", paragraph)
    plain = _LINK.sub(r"\1", plain)
    plain = _TAG.sub("", plain).replace("**", "")
    plain = " ".join(plain.split())
    if len(plain) <= limit:
        return plain
    head = plain[: limit + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= limit // 2:
        return head[: ends[-1]]
    return head[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def read_json_file(path: Path) -> Any:
    """Read a JSON file, gzip-compressed or not; translate failures into :class:`FeedError`."""
    try:
        with path.open("rb") as head:
            magic = head.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError, EOFError) as exc:
        raise FeedError(f"{path}: cannot read JSON: {exc}") from exc


def _attack_id(obj: Mapping[str, Any]) -> str | None:
    for ref in obj.get("external_references") or ():
        if ref.get("source_name") == _KILL_CHAIN and ref.get("external_id"):
            return str(ref["external_id"])
    return None


def _tactics_of(obj: Mapping[str, Any]) -> list[str]:
    return [
        str(phase["phase_name"])
        for phase in obj.get("kill_chain_phases") or ()
        if phase.get("kill_chain_name") == _KILL_CHAIN
    ]


def _version_of(objects: Iterable[Mapping[str, Any]]) -> str:
    for obj in objects:
        if obj.get("type") == "x-mitre-collection" and obj.get("x_mitre_version"):
            return str(obj["x_mitre_version"])
    return ""


def table_from_stix(bundle: Mapping[str, Any], *, version: str = "") -> dict[str, Any]:
    """Build the compact table (a JSON-ready dict) from an ATT&CK STIX 2.0/2.1 bundle."""
    if bundle.get("type") != "bundle" or not isinstance(bundle.get("objects"), list):
        raise FeedError("not a STIX bundle: expected an object with type 'bundle' and 'objects'")
    objects: list[Mapping[str, Any]] = [o for o in bundle["objects"] if isinstance(o, Mapping)]
    by_stix_id: dict[str, Mapping[str, Any]] = {str(o.get("id")): o for o in objects}

    tactic_objs = {o["id"]: o for o in objects if o.get("type") == "x-mitre-tactic"}
    order: list[str] = []
    for matrix in (o for o in objects if o.get("type") == "x-mitre-matrix"):
        order.extend(ref for ref in matrix.get("tactic_refs") or () if ref not in order)
    order.extend(ref for ref in tactic_objs if ref not in order)
    tactics = [
        [
            _attack_id(tactic_objs[ref]) or "",
            tactic_objs[ref]["x_mitre_shortname"],
            tactic_objs[ref]["name"],
        ]
        for ref in order
        if ref in tactic_objs
    ]

    techniques: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj.get("type") != "attack-pattern":
            continue
        tid = _attack_id(obj)
        if tid is None or (tid in techniques and not techniques[tid].get("revoked")):
            continue
        entry: dict[str, Any] = {"name": obj.get("name", ""), "tactics": _tactics_of(obj)}
        if obj.get("x_mitre_deprecated"):
            entry["deprecated"] = True
        if obj.get("revoked"):
            entry["revoked"] = True
        platforms = obj.get("x_mitre_platforms")
        if platforms:
            entry["platforms"] = list(platforms)
        description = "" if obj.get("revoked") else short_description(obj.get("description", ""))
        if description:
            entry["description"] = description
        techniques[tid] = entry

    uses: dict[str, set[str]] = {}
    for rel in objects:
        if rel.get("type") != "relationship" or rel.get("revoked"):
            continue
        source = by_stix_id.get(str(rel.get("source_ref")))
        target = by_stix_id.get(str(rel.get("target_ref")))
        if source is None or target is None:
            continue
        src_id, dst_id = _attack_id(source), _attack_id(target)
        if src_id is None or dst_id is None:
            continue
        kind = rel.get("relationship_type")
        if kind == "revoked-by" and src_id in techniques:
            techniques[src_id]["revoked_by"] = dst_id
        elif kind == "uses":
            uses.setdefault(src_id, set()).add(dst_id)

    def described(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
        oid = _attack_id(obj)
        if oid is None or obj.get("revoked") or obj.get("x_mitre_deprecated"):
            return None
        used = uses.get(oid, set())
        aliases = obj.get("aliases") or obj.get("x_mitre_aliases") or ()
        entry: dict[str, Any] = {
            "name": obj.get("name", ""),
            "techniques": sorted(u for u in used if u.startswith("T")),
        }
        extra_aliases = [a for a in aliases if a != obj.get("name")]
        if extra_aliases:
            entry["aliases"] = extra_aliases
        if kind == "group":
            entry["software"] = sorted(u for u in used if u.startswith("S"))
        else:
            entry["type"] = obj.get("type")
        return entry

    groups: dict[str, dict[str, Any]] = {}
    software: dict[str, dict[str, Any]] = {}
    for obj in objects:
        kind = obj.get("type")
        if kind == "intrusion-set":
            group = described(obj, "group")
            if group is not None:
                groups[str(_attack_id(obj))] = group
        elif kind in ("malware", "tool"):
            tool = described(obj, "software")
            if tool is not None:
                software[str(_attack_id(obj))] = tool

    return {
        "format": TABLE_FORMAT,
        "domain": "enterprise-attack",
        "attack_version": version or _version_of(objects),
        "notice": MITRE_NOTICE,
        "license": MITRE_LICENSE,
        "disclaimer": MITRE_DISCLAIMER,
        "tactics": tactics,
        "techniques": dict(sorted(techniques.items())),
        "groups": dict(sorted(groups.items())),
        "software": dict(sorted(software.items())),
    }


def write_table(table: Mapping[str, Any], path: Path) -> None:
    """Write the table as deterministic gzip JSON (mtime 0, so rebuilds are byte-identical)."""
    data = json.dumps(table, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as handle,
    ):
        handle.write(data.encode("utf-8"))
