"""Singleton duties and live role processes for the scale-out mode (scheduler, notifier).

A *duty* is work that must run in exactly one process at a time (the ``scheduler`` duty:
coordination, silent units, retention). Any number of processes may stand ready for it; the
one holding the row's lease in ``duty_leases`` runs it and renews the lease every third of the
lease time, the others try to claim it as often. When the holder dies its lease expires and
the next claim takes it over (``takeovers``; every change of holder counts in ``moves``).

Every acquisition (not a renewal) increments the row's ``epoch``. The holder's commits are
*fenced*: :func:`check_duty` runs inside each of its write transactions, locks the row and
refuses unless the holder, its epoch and an unexpired lease all match, so a holder that
stalled past its lease (or lost and later regained it, with work of the old epoch still in
flight) cannot commit once another epoch began.

``role_members`` has one row per live scheduler, notifier (and the like) process, renewed with
its lease loop, carrying its counters as JSON: the api's /metrics reads them, so coordination
and notification figures show on the api although they are counted elsewhere.

A holder frozen inside a transaction (a paused VM, SIGSTOP) would keep the row locked and
block every claim: the scheduler's connections end a transaction idle for longer than the lease
(``open_state(stall_timeout=...)``), which releases the lock and rolls its work back.

Times are the processes' own clocks (epoch seconds): keep them in sync (NTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.store.state.leases import LeaseLost
from vedette.store.state.models import Base

__all__ = [
    "SCHEDULER",
    "DutyLease",
    "DutyRow",
    "RoleMember",
    "check_duty",
    "claim_duty",
    "duty_table",
    "leave",
    "live_members",
    "release_duty",
    "renew_member",
]

SCHEDULER = "scheduler"
"""The scheduler's duty: coordinator, silent-unit check, housekeeping."""


class DutyLease(Base):
    """Who runs one singleton duty, until when, in which epoch, how often it changed hands."""

    __tablename__ = "duty_leases"
    duty: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    moves: Mapped[int] = mapped_column(BigInteger, default=0)
    takeovers: Mapped[int] = mapped_column(BigInteger, default=0)


class RoleMember(Base):
    """A live role process (scheduler, notifier) and its counters, renewed by its loop."""

    __tablename__ = "role_members"
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[float] = mapped_column(Float)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)


@dataclass(frozen=True, slots=True)
class DutyRow:
    """One duty's lease as /metrics shows it."""

    duty: str
    owner: str | None
    live: bool
    epoch: int
    moves: int
    takeovers: int


def _row(session: Session, duty: str) -> DutyLease:
    """The duty's row, locked until commit (created first when missing)."""
    row = session.get(DutyLease, duty, with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(
                DutyLease(duty=duty, owner=None, expires_at=0.0, epoch=0, moves=0, takeovers=0)
            )
    except IntegrityError:
        pass  # another process created it first: the same row
    row = session.get(DutyLease, duty, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def claim_duty(session: Session, duty: str, owner: str, now: float, ttl: float) -> int | None:
    """Renew or take the duty's lease; the epoch held, or None when another process holds it.

    A live lease of ``owner`` is renewed in its epoch; a free, released or expired one is
    taken in a new epoch (also by its former holder, whose work of the old epoch is then
    fenced off). Committed.
    """
    row = _row(session, duty)
    if row.owner == owner and row.expires_at > now:
        row.expires_at = now + ttl
        epoch = row.epoch
    elif row.owner is not None and row.owner != owner and row.expires_at > now:
        epoch = None  # someone else's, alive
    else:
        if row.owner is not None and row.owner != owner:
            row.moves += 1
            if row.expires_at > 0:
                row.takeovers += 1  # expired, not released: its holder died or stalled
        row.owner = owner
        row.expires_at = now + ttl
        row.epoch += 1
        epoch = row.epoch
    session.commit()
    return epoch


def check_duty(session: Session, duty: str, owner: str, epoch: int, now: float) -> None:
    """Raise LeaseLost unless ``owner`` holds ``duty`` in ``epoch`` now; locks the row until
    the caller's commit (the fence of every write of the duty: call it last, right before
    the commit)."""
    row = session.get(DutyLease, duty, with_for_update=True, populate_existing=True)
    if row is None or row.owner != owner or row.epoch != epoch or row.expires_at <= now:
        raise LeaseLost(
            f"duty {duty}: held by {row.owner if row else None} in epoch "
            f"{row.epoch if row else 0}, not {owner} in epoch {epoch}"
        )


def release_duty(session: Session, duty: str, owner: str) -> None:
    """Give the duty up at once (its work already stopped), so another takes it now; committed."""
    row = session.get(DutyLease, duty, with_for_update=True)
    if row is not None and row.owner == owner:
        row.expires_at = 0.0
    session.commit()


def renew_member(
    session: Session, owner: str, role: str, now: float, ttl: float, stats: dict[str, Any]
) -> None:
    """Say this process is alive for ``ttl`` more seconds, with its counters (flushed)."""
    member = session.get(RoleMember, owner)
    if member is None:
        session.add(RoleMember(owner=owner, role=role, expires_at=now + ttl, stats=stats))
    else:
        member.expires_at = now + ttl
        member.stats = stats
    # Members gone for long (killed processes) are forgotten; not the workers' rows, whose
    # counts are folded, never dropped (vedette.store.state.worker_figures).
    session.execute(
        delete(RoleMember).where(
            RoleMember.expires_at < now - 100 * ttl,
            RoleMember.role.notin_(("worker", "worker:retired")),
        )
    )
    session.flush()


def leave(session: Session, owner: str) -> None:
    """This process stops: it is no longer a live member (flushed)."""
    session.execute(delete(RoleMember).where(RoleMember.owner == owner))
    session.flush()


def live_members(session: Session, now: float) -> list[RoleMember]:
    """Every live role process, oldest name first."""
    return list(
        session.scalars(
            select(RoleMember).where(RoleMember.expires_at > now).order_by(RoleMember.owner)
        )
    )


def duty_table(session: Session, now: float) -> list[DutyRow]:
    """Every duty's lease, for /metrics."""
    return [
        DutyRow(
            r.duty,
            r.owner,
            bool(r.owner) and r.expires_at > now,
            r.epoch,
            r.moves,
            r.takeovers,
        )
        for r in session.scalars(select(DutyLease).order_by(DutyLease.duty))
    ]
