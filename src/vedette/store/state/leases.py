"""Partition leases for the scale-out mode: which worker owns which event partition.

One row per partition. A worker holds a partition while ``expires_at`` is in the future and
renews it every third of the lease time; every worker, holding partitions or not, renews its
row in ``partition_members`` too, so the others count it when they compute their fair share.
A worker that dies stops renewing, and once its lease has expired another worker takes the
partition over (``takeovers``; every owner change counts in ``moves``). A worker that leaves
cleanly releases its partitions at once (``expires_at = 0``, the owner kept so the next taker
still counts a move).

Every claim locks all rows (``SELECT ... FOR UPDATE``), so claims are serialised and a fair
share (partitions / live workers, rounded up) is computed on one consistent view. A worker's
commits are *fenced*: :func:`check_lease` runs inside the worker's own write transaction and
locks its lease row, so a worker that lost its lease (paused longer than the lease, then woke
up) cannot commit positions or alerts for a partition that someone else now owns. A worker
frozen inside a transaction would hold its row locks and block every claim: its connections
end a transaction idle for longer than the lease (``open_state(stall_timeout=...)``), so
PostgreSQL ends such a session and its locks go.

Times are the workers' own clocks (epoch seconds): keep them in sync (NTP); the lease time
(10 s by default) is far longer than any sane skew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import BigInteger, Float, Integer, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.errors import VedetteError
from vedette.store.state.models import Base

__all__ = [
    "LeaseLost",
    "PartitionLease",
    "PartitionMember",
    "check_lease",
    "claim_partitions",
    "ensure_partitions",
    "lease_table",
    "release_partitions",
]


class LeaseLost(VedetteError):
    """This worker no longer holds the partition's lease: its commit is refused."""


class PartitionLease(Base):
    """Who owns one event partition, until when, and how often it changed hands."""

    __tablename__ = "partition_leases"
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    moves: Mapped[int] = mapped_column(BigInteger, default=0)
    takeovers: Mapped[int] = mapped_column(BigInteger, default=0)


class PartitionMember(Base):
    """A live worker process, holding partitions or not (so others make room for it)."""

    __tablename__ = "partition_members"
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """One lease as shown on /metrics."""

    partition: int
    owner: str | None
    live: bool
    moves: int
    takeovers: int


def ensure_partitions(session: Session, partitions: int) -> None:
    """Create the rows of partitions 0..partitions-1 that do not exist yet (committed)."""
    have = set(session.scalars(select(PartitionLease.partition)))
    missing = [p for p in range(partitions) if p not in have]
    if not missing:
        return
    for p in missing:
        session.add(PartitionLease(partition=p, owner=None, expires_at=0.0, moves=0, takeovers=0))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # another worker created them first: the same rows


def claim_partitions(
    session: Session, owner: str, partitions: int, now: float, ttl: float, *, limit: int | None
) -> tuple[list[int], list[int], int]:
    """Renew this owner's leases and take free or expired partitions up to its fair share.

    Returns ``(held, surplus, taken_over)``: the partitions held now (renewed or newly taken),
    those held beyond the fair share (the caller stops their workers, then releases them), and
    how many were taken from an owner whose lease had expired. ``limit`` caps the share.
    """
    member = session.get(PartitionMember, owner)
    if member is None:
        session.add(PartitionMember(owner=owner, expires_at=now + ttl))
    else:
        member.expires_at = now + ttl
    # Members gone for long (killed workers) are forgotten; their rows only cost a scan.
    session.execute(delete(PartitionMember).where(PartitionMember.expires_at < now - 100 * ttl))
    session.flush()
    rows = list(
        session.scalars(
            select(PartitionLease)
            .where(PartitionLease.partition < partitions)
            .order_by(PartitionLease.partition)
            .with_for_update()
        )
    )
    members = session.scalars(select(PartitionMember.owner).where(PartitionMember.expires_at > now))
    live = {r.owner for r in rows if r.owner and r.expires_at > now} | set(members) | {owner}
    fair = math.ceil(partitions / len(live))
    if limit is not None:
        fair = min(fair, limit)
    held = [r for r in rows if r.owner == owner and r.expires_at > 0]
    for r in held:
        r.expires_at = now + ttl
    surplus = [r.partition for r in held[fair:]]
    taken_over = 0
    for r in rows:
        if len(held) >= fair:
            break
        if r.owner == owner and r.expires_at > 0:
            continue
        if r.owner is not None and r.expires_at > now:
            continue  # someone else's, alive
        if r.owner is not None and r.owner != owner:
            r.moves += 1
            if r.expires_at > 0:
                r.takeovers += 1  # expired, not released: its owner died or stalled
                taken_over += 1
        r.owner = owner
        r.expires_at = now + ttl
        held.append(r)
    session.commit()
    return [r.partition for r in held], surplus, taken_over


def release_partitions(
    session: Session, owner: str, partitions: list[int], *, leaving: bool = False
) -> None:
    """Give partitions up at once (their workers already stopped); committed. ``leaving``:
    the worker stops, so it is no longer counted when the others compute their share."""
    if leaving:
        session.execute(delete(PartitionMember).where(PartitionMember.owner == owner))
    for r in session.scalars(
        select(PartitionLease)
        .where(PartitionLease.partition.in_(partitions), PartitionLease.owner == owner)
        .with_for_update()
    ):
        r.expires_at = 0.0
    session.commit()


def check_lease(session: Session, owner: str, partition: int, now: float) -> None:
    """Raise LeaseLost unless ``owner`` holds ``partition`` now; locks the row until commit."""
    row = session.get(PartitionLease, partition, with_for_update=True)
    if row is None or row.owner != owner or row.expires_at <= now:
        raise LeaseLost(
            f"partition {partition}: lease held by {row.owner if row else None}, not {owner}"
        )


def lease_table(session: Session, now: float) -> list[LeaseRow]:
    """Every lease, for /metrics."""
    return [
        LeaseRow(r.partition, r.owner, bool(r.owner) and r.expires_at > now, r.moves, r.takeovers)
        for r in session.scalars(select(PartitionLease).order_by(PartitionLease.partition))
    ]
