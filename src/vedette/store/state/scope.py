"""Who is asking, and which units they may see: roles, principals, scopes and the access errors.

A role on a unit covers that unit and every unit below it. Every repository call takes the
caller's :class:`Scope`; an object of a unit outside the scope is :class:`NotFound` (as if it
did not exist), and :class:`Forbidden` is only for a role that lacks a right on its own units.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from vedette.errors import VedetteError


class Role(StrEnum):
    """What a user or token may do on its units."""

    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"
    INGEST = "ingest"


class NotFound(VedetteError):
    """No such object in the caller's scope (another unit's object included)."""


class Forbidden(VedetteError):
    """The caller's role lacks this right on its own units."""


class Invalid(VedetteError):
    """A request the data layer refuses as malformed (bad name, missing close reason, ...)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user or token, with its unit and role."""

    kind: Literal["user", "token"]
    id: int
    name: str
    unit_id: int
    unit_name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Scope:
    """A principal and the ids of the units it covers (its unit and all units below)."""

    principal: Principal
    unit_ids: frozenset[int]

    @property
    def actor(self) -> str:
        """The name written to the audit trail for this caller."""
        return f"{self.principal.kind}:{self.principal.name}"

    def covers(self, unit_id: int | None) -> bool:
        """True when ``unit_id`` is one of the caller's units."""
        return unit_id is not None and unit_id in self.unit_ids

    def can_read(self) -> bool:
        """Read alerts, units and exceptions (every role but ingest)."""
        return self.principal.role in (Role.ADMIN, Role.ANALYST, Role.VIEWER)

    def can_write_alerts(self) -> bool:
        """Change alerts, comment, manage rule exceptions."""
        return self.principal.role in (Role.ADMIN, Role.ANALYST)

    def can_admin(self) -> bool:
        """Manage units, users and tokens."""
        return self.principal.role is Role.ADMIN

    def can_ingest(self) -> bool:
        """Send events."""
        return self.principal.role in (Role.INGEST, Role.ADMIN)


def require(allowed: bool, what: str) -> None:
    """Raise :class:`Forbidden` naming ``what`` unless ``allowed``."""
    if not allowed:
        raise Forbidden(f"this role may not {what}")
