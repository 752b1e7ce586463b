"""Asset criticality: the hosts and networks of a unit that matter most, and alert priority.

A unit marks a host name or a network (CIDR) as ``critical`` or ``high``. An alert's
**priority** is its level raised by the most critical asset it touches: two levels for a
``critical`` asset, one for a ``high`` one, capped at ``critical``. An alert touches an asset
when its host is that host (case-insensitive; a bare name also covers its FQDN) or is an address
in that network, or when a top-level field of its sample event holds an address in that network.
Priority is computed when alerts are read, from the current asset table, so marking a server
critical re-ranks the queue at once without rewriting alerts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.events import LEVELS, level_rank
from vedette.store.state.audit import append_audit
from vedette.store.state.models import Alert, Base, Unit, utcnow
from vedette.store.state.scope import Invalid, NotFound, Scope, require

KINDS: Final = ("host", "network")
CRITICALITIES: Final = ("high", "critical")
RAISE: Final = {"high": 1, "critical": 2}
"""Levels an alert's priority is raised by, per asset criticality."""
_SAMPLE_FIELDS: Final = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CriticalAsset(Base):
    """A host or a network of a unit, marked by criticality."""

    __tablename__ = "critical_assets"
    __table_args__ = (UniqueConstraint("unit_id", "kind", "value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    criticality: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _normalise(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "host":
        if not value or len(value) > 255 or any(c.isspace() for c in value):
            raise Invalid("a host asset needs a host name or address without spaces")
        return value.lower()
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise Invalid(f"not a network: {value!r}") from exc


def asset_out(row: CriticalAsset, unit: str) -> dict[str, Any]:
    """The API shape of an asset."""
    return {
        "id": row.id,
        "unit": unit,
        "kind": row.kind,
        "value": row.value,
        "criticality": row.criticality,
        "note": row.note,
        "created_by": row.created_by,
        "created_at": row.created_at,
    }


def add_asset(
    session: Session,
    scope: Scope,
    *,
    unit: Unit,
    kind: str,
    value: str,
    criticality: str = "critical",
    note: str = "",
) -> dict[str, Any]:
    """Mark a host or network of one of the caller's units (again: updates it). Audited."""
    require(scope.can_write_alerts(), "mark assets")
    if not scope.covers(unit.id):
        raise NotFound(f"no unit {unit.name!r}")
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    if criticality not in CRITICALITIES:
        raise Invalid(f"criticality must be one of {', '.join(CRITICALITIES)}")
    value = _normalise(kind, value)
    row = session.scalar(
        select(CriticalAsset).where(
            CriticalAsset.unit_id == unit.id,
            CriticalAsset.kind == kind,
            CriticalAsset.value == value,
        )
    )
    before = None if row is None else {"criticality": row.criticality, "note": row.note}
    if row is None:
        row = CriticalAsset(
            unit_id=unit.id, kind=kind, value=value, created_by=scope.actor, note=note
        )
        session.add(row)
    row.criticality = criticality
    row.note = note
    session.flush()
    append_audit(
        session,
        actor=scope.actor,
        action="asset.set",
        object_type="asset",
        object_id=row.id,
        unit_id=unit.id,
        before=before,
        after={"kind": kind, "value": value, "criticality": criticality, "note": note},
    )
    return asset_out(row, unit.name)


def list_assets(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """The caller's units' assets."""
    require(scope.can_read(), "read assets")
    rows = session.execute(
        select(CriticalAsset, Unit.name)
        .join(Unit, Unit.id == CriticalAsset.unit_id)
        .where(CriticalAsset.unit_id.in_(scope.unit_ids))
        .order_by(Unit.name, CriticalAsset.kind, CriticalAsset.value)
    )
    return [asset_out(row, name) for row, name in rows]


def delete_asset(session: Session, scope: Scope, asset_id: int) -> None:
    """Unmark one of the caller's assets. Audited."""
    require(scope.can_read(), "read assets")
    row = session.get(CriticalAsset, asset_id)
    if row is None or not scope.covers(row.unit_id):
        raise NotFound(f"no asset {asset_id}")
    require(scope.can_write_alerts(), "unmark assets")
    append_audit(
        session,
        actor=scope.actor,
        action="asset.delete",
        object_type="asset",
        object_id=row.id,
        unit_id=row.unit_id,
        before={"kind": row.kind, "value": row.value, "criticality": row.criticality},
        after=None,
    )
    session.delete(row)
    session.flush()


# -- priority ------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Priority:
    """An alert's priority: its level raised by the asset it touches (if any)."""

    level: str
    asset: dict[str, str] | None

    @property
    def rank(self) -> int:
        """The priority's place in :data:`~vedette.events.LEVELS`."""
        return level_rank(self.level)


@dataclass(slots=True)
class _UnitAssets:
    hosts: dict[str, str]
    networks: list[tuple[Network, str]]


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(value, str) or not 2 < len(value) < 46:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _better(current: tuple[str, str, str] | None, new: tuple[str, str, str]) -> bool:
    return current is None or RAISE[new[2]] > RAISE[current[2]]


def _touched(alert: Alert, assets: _UnitAssets) -> tuple[str, str, str] | None:
    """``(kind, value, criticality)`` of the most critical asset the alert touches."""
    best: tuple[str, str, str] | None = None
    host = (alert.host or "").lower()
    if host:
        for name in (host, host.split(".", 1)[0]):
            crit = assets.hosts.get(name)
            if crit is not None and _better(best, ("host", name, crit)):
                best = ("host", name, crit)
    if assets.networks:
        addresses = [_address(alert.host)]
        sample = alert.sample_event or {}
        addresses += [_address(v) for v in list(sample.values())[:_SAMPLE_FIELDS]]
        for address in addresses:
            if address is None:
                continue
            for network, crit in assets.networks:
                candidate = ("network", str(network), crit)
                inside = address.version == network.version and address in network
                if inside and _better(best, candidate):
                    best = candidate
    return best


def priorities(session: Session, alerts: Sequence[Alert]) -> dict[int, Priority]:
    """The priority of each alert (by id), from the assets of the alerts' units."""
    unit_ids = {a.unit_id for a in alerts}
    by_unit: dict[int, _UnitAssets] = {u: _UnitAssets({}, []) for u in unit_ids}
    if unit_ids:
        rows = session.scalars(select(CriticalAsset).where(CriticalAsset.unit_id.in_(unit_ids)))
        for row in rows:
            assets = by_unit[row.unit_id]
            if row.kind == "host":
                assets.hosts[row.value] = row.criticality
            else:
                assets.networks.append((ipaddress.ip_network(row.value), row.criticality))
    out: dict[int, Priority] = {}
    for alert in alerts:
        touched = _touched(alert, by_unit[alert.unit_id])
        base = max(level_rank(alert.level), 0)
        if touched is None:
            out[alert.id] = Priority(LEVELS[base], None)
            continue
        kind, value, crit = touched
        level = LEVELS[min(base + RAISE[crit], len(LEVELS) - 1)]
        out[alert.id] = Priority(level, {"kind": kind, "value": value, "criticality": crit})
    return out


def sort_by_priority(alerts: Iterable[Alert], found: dict[int, Priority]) -> list[Alert]:
    """Highest priority first; then the more critical asset, the higher level, the newer."""

    def key(alert: Alert) -> tuple[int, int, int, int]:
        p = found[alert.id]
        bump = RAISE[p.asset["criticality"]] if p.asset else 0
        return (-p.rank, -bump, -level_rank(alert.level), -alert.id)

    return sorted(alerts, key=key)
