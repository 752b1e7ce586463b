"""The ATT&CK knowledge base: techniques, tactics, groups and software, offline.

``AttackKB.load()`` reads the compact Enterprise table shipped inside the package
(``data/attack-enterprise.json.gz``, derived from MITRE's STIX data by
``scripts/build_attack_table.py``; © The MITRE Corporation, see ``docs/intel.md``).
``AttackKB.load(path)`` reads a user-supplied table or a full ATT&CK STIX bundle instead, so a
newer ATT&CK release needs no new Vedette release.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from vedette.errors import FeedError
from vedette.events import AttackRef, Detection
from vedette.intel.attack_table import TABLE_FORMAT, read_json_file, table_from_stix

_TECHNIQUE_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
_TECHNIQUE_ID = re.compile(r"^T\d{4}(?:\.\d{3})?$")


@dataclass(slots=True, frozen=True)
class Tactic:
    """An ATT&CK tactic: ``TA0002``, short name ``execution``, name ``Execution``."""

    id: str
    shortname: str
    name: str


@dataclass(slots=True, frozen=True)
class Technique:
    """A technique or sub-technique with its tactics (short names, matrix order) and the
    first paragraph of its description (plain text, citations removed; empty if revoked)."""

    id: str
    name: str
    tactics: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    deprecated: bool = False
    revoked: bool = False
    revoked_by: str | None = None
    description: str = ""

    @property
    def parent_id(self) -> str | None:
        """``T1059`` for ``T1059.001``; None for a technique."""
        return self.id.split(".", 1)[0] if "." in self.id else None

    @property
    def is_current(self) -> bool:
        """Neither deprecated nor revoked."""
        return not (self.deprecated or self.revoked)


@dataclass(slots=True, frozen=True)
class Group:
    """An ATT&CK group (intrusion set) and the techniques and software it is known to use."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    techniques: frozenset[str] = frozenset()
    software: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class Software:
    """ATT&CK software (``malware`` or ``tool``) and the techniques it implements."""

    id: str
    name: str
    type: str = ""
    aliases: tuple[str, ...] = ()
    techniques: frozenset[str] = frozenset()


def technique_ids_from_tags(tags: Iterable[str]) -> list[str]:
    """Technique ids named by Sigma tags (``attack.t1059.001`` -> ``T1059.001``), in order."""
    found: list[str] = []
    for tag in tags:
        match = _TECHNIQUE_TAG.match(tag.strip())
        if match and match.group(1).upper() not in found:
            found.append(match.group(1).upper())
    return found


class AttackKB:
    """Enterprise ATT&CK, looked up by id: names, tactics, groups, software."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        if table.get("format") != TABLE_FORMAT:
            raise FeedError(f"not a Vedette ATT&CK table (format {table.get('format')!r})")
        self.version: str = str(table.get("attack_version", ""))
        self.domain: str = str(table.get("domain", "enterprise-attack"))
        self.notice: str = str(table.get("notice", ""))
        self._refs: dict[str, AttackRef] = {}
        self.tactics: tuple[Tactic, ...] = tuple(Tactic(*row) for row in table["tactics"])
        self._tactic_by_short = {t.shortname: t for t in self.tactics}
        self._tactic_by_name = {t.name.lower(): t for t in self.tactics}
        self._tactic_by_id = {t.id: t for t in self.tactics}
        self.techniques: dict[str, Technique] = {
            tid: Technique(
                id=tid,
                name=entry["name"],
                tactics=tuple(entry.get("tactics", ())),
                platforms=tuple(entry.get("platforms", ())),
                deprecated=bool(entry.get("deprecated", False)),
                revoked=bool(entry.get("revoked", False)),
                revoked_by=entry.get("revoked_by"),
                description=str(entry.get("description", "")),
            )
            for tid, entry in table["techniques"].items()
        }
        self.groups: dict[str, Group] = {
            gid: Group(
                id=gid,
                name=entry["name"],
                aliases=tuple(entry.get("aliases", ())),
                techniques=frozenset(entry.get("techniques", ())),
                software=tuple(entry.get("software", ())),
            )
            for gid, entry in table["groups"].items()
        }
        self.software: dict[str, Software] = {
            sid: Software(
                id=sid,
                name=entry["name"],
                type=str(entry.get("type", "")),
                aliases=tuple(entry.get("aliases", ())),
                techniques=frozenset(entry.get("techniques", ())),
            )
            for sid, entry in table["software"].items()
        }

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path | None = None) -> AttackKB:
        """The bundled Enterprise table, or a table / STIX bundle from ``path``."""
        if path is None:
            data = resources.files("vedette.intel").joinpath("data/attack-enterprise.json.gz")
            with resources.as_file(data) as bundled:
                return cls(read_json_file(bundled))
        raw = read_json_file(Path(path))
        if isinstance(raw, Mapping) and raw.get("type") == "bundle":
            return cls(table_from_stix(raw))
        if isinstance(raw, Mapping):
            return cls(raw)
        raise FeedError(f"{path}: neither an ATT&CK STIX bundle nor a Vedette ATT&CK table")

    # -- lookups ---------------------------------------------------------------------------

    def technique(self, technique_id: str, *, follow_revoked: bool = True) -> Technique | None:
        """The technique with this id (any case); a revoked one resolves to its successor."""
        technique = self.techniques.get(technique_id.strip().upper())
        seen: set[str] = set()
        while (
            follow_revoked
            and technique is not None
            and technique.revoked_by
            and technique.revoked_by not in seen
        ):
            seen.add(technique.id)
            technique = self.techniques.get(technique.revoked_by, technique)
        return technique

    def tactic(self, key: str) -> Tactic | None:
        """A tactic by short name (``execution``), id (``TA0002``), name, or Sigma tag."""
        norm = key.strip().lower().removeprefix("attack.")
        return (
            self._tactic_by_short.get(norm.replace("_", "-"))
            or self._tactic_by_id.get(norm.upper())
            or self._tactic_by_name.get(norm.replace("_", " ").replace("-", " "))
        )

    def tactic_rank(self, shortname: str) -> int:
        """Position of a tactic in the matrix (unknown tactics sort last)."""
        for rank, tactic in enumerate(self.tactics):
            if tactic.shortname == shortname:
                return rank
        return len(self.tactics)

    def ref(self, technique_id: str) -> AttackRef:
        """An :class:`AttackRef` with name and tactics filled (id kept as given if unknown)."""
        cached = self._refs.get(technique_id)
        if cached is not None:
            return cached
        tid = technique_id.strip().upper()
        technique = self.technique(tid)
        ref = (
            AttackRef(tid)
            if technique is None
            else AttackRef(technique.id, technique.name, technique.tactics)
        )
        if len(self._refs) < 10_000:  # enrichment runs per detection: remember the answers
            self._refs[technique_id] = ref
        return ref

    def tactics_from_tags(self, tags: Iterable[str]) -> tuple[str, ...]:
        """Tactic short names named by Sigma tags such as ``attack.execution``."""
        found: list[str] = []
        for tag in tags:
            if not tag.lower().startswith("attack."):
                continue
            tactic = self.tactic(tag)
            if tactic is not None and tactic.shortname not in found:
                found.append(tactic.shortname)
        return tuple(sorted(found, key=self.tactic_rank))

    # -- enrichment ------------------------------------------------------------------------

    def enrich_refs(
        self, refs: Iterable[AttackRef], tags: Iterable[str] = ()
    ) -> tuple[AttackRef, ...]:
        """``refs`` plus techniques named in ``tags``, each with name and tactics filled."""
        ordered: dict[str, AttackRef] = {}
        for ref in refs:
            known = self.ref(ref.technique_id)
            if not known.name and ref.name:
                known = replace(known, name=ref.name, tactics=ref.tactics or known.tactics)
            ordered.setdefault(known.technique_id, known)
        for tid in technique_ids_from_tags(tags):
            known = self.ref(tid)
            ordered.setdefault(known.technique_id, known)
        return tuple(ordered.values())

    def enrich(self, detections: Iterable[Detection]) -> None:
        """Fill technique names and tactics of each detection, in place.

        Techniques come from ``detection.attack`` and from ``attack.tNNNN`` tags; revoked ids
        resolve to their successor. ``extra["attack_tactics"]`` receives the tactic short names
        (matrix order) from the techniques and from tactic tags such as ``attack.execution``.
        """
        for detection in detections:
            detection.attack = self.enrich_refs(detection.attack, detection.tags)
            tactics = set(self.tactics_from_tags(detection.tags))
            for ref in detection.attack:
                tactics.update(ref.tactics)
            if tactics:
                detection.extra["attack_tactics"] = sorted(tactics, key=self.tactic_rank)

    # -- iteration -------------------------------------------------------------------------

    def current_techniques(self) -> Iterator[Technique]:
        """Techniques and sub-techniques that are neither deprecated nor revoked."""
        return (t for t in self.techniques.values() if t.is_current)

    def group_by_name(self, name: str) -> Group | None:
        """A group by id, name or alias (case-insensitive)."""
        key = name.strip().lower()
        for group in self.groups.values():
            if key in (group.id.lower(), group.name.lower()) or key in (
                a.lower() for a in group.aliases
            ):
                return group
        return None


def is_technique_id(text: str) -> bool:
    """True for ``T1059`` or ``T1059.001`` (case-insensitive)."""
    return bool(_TECHNIQUE_ID.match(text.strip().upper()))


def sorted_technique_ids(ids: Sequence[str]) -> list[str]:
    """Technique ids in numeric order (sub-techniques right after their parent)."""
    return sorted(set(ids), key=lambda t: tuple(int(p) for p in t[1:].split(".")))
