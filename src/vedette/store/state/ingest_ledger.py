"""The ingest ledger: idempotency keys of batches acknowledged in the scale-out mode.

JetStream deduplicates a repeated ``Nats-Msg-Id`` only within the stream's duplicate window
(one hour by default here). A forwarder catching up after a longer outage may resend a batch
it was never sure about; the api role looks its ``(unit, key)`` up here first, and records it
after JetStream's publish acknowledgement and before answering 202. Rows older than the
retention (seven days, as in the embedded spool) are pruned.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.store.state.models import Base

__all__ = ["IngestKey", "forget_keys_before", "lookup_key", "record_key"]


class IngestKey(Base):
    """One acknowledged batch's idempotency key and where it went."""

    __tablename__ = "ingest_ledger"
    unit: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, index=True)


def lookup_key(session: Session, unit: str, key: str) -> tuple[int, int] | None:
    """``(seq, count)`` of the batch acknowledged under this key, or None."""
    row = session.execute(
        select(IngestKey.seq, IngestKey.count).where(IngestKey.unit == unit, IngestKey.key == key)
    ).first()
    return (int(row[0]), int(row[1])) if row else None


def record_key(session: Session, unit: str, key: str, seq: int, count: int, now: float) -> None:
    """Record a key (committed); a key recorded already keeps its first row."""
    session.add(IngestKey(unit=unit, key=key, seq=seq, count=count, created_at=now))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()


def forget_keys_before(session: Session, before: float) -> int:
    """Delete keys recorded before ``before`` (committed); how many went."""
    result = session.execute(delete(IngestKey).where(IngestKey.created_at < before))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
