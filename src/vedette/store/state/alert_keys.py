"""Grouping keys of alerts (host, user, observables), kept in a table so grouping is a lookup.

Incident grouping asks "which alerts of this unit share a host, a user or an observable with
this one". Computing the keys means decoding an alert's JSON columns; doing that for every
alert of the window on every new alert grew with the alerts. The keys are written here when an
alert is created (and when later detections add observables), each as the SHA-256 of its kind
and value, indexed, so the question is one indexed query whatever the number of alerts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.store.state.models import Alert, Base

QUIET_USERS: Final = frozenset(
    {
        "",
        "-",
        "system",
        "nt authority\\system",
        "local service",
        "network service",
        "nt authority\\local service",
        "nt authority\\network service",
        "anonymous logon",
        "root",
    }
)
"""Account names that are on every host: grouping on them would join unrelated alerts."""

USER_FIELDS: Final = (
    "User",
    "TargetUserName",
    "SubjectUserName",
    "UserName",
    "user",
    "AccountName",
)


class AlertKey(Base):
    """One grouping key of one alert (the hash of kind and value)."""

    __tablename__ = "alert_keys"
    __table_args__ = (Index("ix_alert_keys_key_unit", "key", "unit_id"),)
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer)


def sample_user(sample: dict[str, Any]) -> str | None:
    """The account of a sample event worth grouping on (lower case), if any."""
    for name in USER_FIELDS:
        value = sample.get(name)
        if isinstance(value, str) and value.strip().lower() not in QUIET_USERS:
            if value.strip().endswith("$"):
                continue  # machine accounts are per host: the host key covers them
            return value.strip().lower()
    return None


def keys_of(
    host: str | None, sample_event: dict[str, Any] | None, observables: Iterable[Any] | None
) -> set[tuple[str, str]]:
    """What joins an alert to an incident: its host, user and observables."""
    keys: set[tuple[str, str]] = set()
    if host:
        keys.add(("host", host.lower()))
    user = sample_user(sample_event or {})
    if user:
        keys.add(("user", user))
    for item in observables or []:
        if isinstance(item, dict) and item.get("value"):
            keys.add(("observable", f"{item.get('type')}:{item.get('value')}"))
    return keys


def grouping_keys(alert: Alert) -> set[tuple[str, str]]:
    """The grouping keys of an alert, from its columns."""
    return keys_of(alert.host, alert.sample_event, alert.observables)


def key_hash(key: tuple[str, str]) -> str:
    """The stored form of a key: fixed length whatever the value, so it indexes everywhere."""
    return hashlib.sha256(f"{key[0]}\x00{key[1]}".encode()).hexdigest()


def write_keys(
    session: Session,
    alert_id: int,
    unit_id: int,
    keys: Iterable[tuple[str, str]],
    *,
    fresh: bool = False,
) -> None:
    """Record keys of an alert, skipping those it already has (none when ``fresh``). Flushes."""
    hashes = {key_hash(k) for k in keys}
    if not hashes:
        return
    have: set[str] = set()
    if not fresh:
        query = select(AlertKey.key).where(AlertKey.alert_id == alert_id, AlertKey.key.in_(hashes))
        have = set(session.scalars(query))
    session.add_all(
        AlertKey(alert_id=alert_id, key=h, unit_id=unit_id) for h in sorted(hashes - have)
    )
    session.flush()
