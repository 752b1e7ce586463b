"""The audit trail: every write leaves a chained record; tampering shows where it starts."""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text

from vedette.store.state import (
    Role,
    StateDB,
    add_exception,
    add_token,
    add_user,
    append_audit,
    list_audit,
    verify_chain,
)
from vedette.store.state.audit import GENESIS
from vedette.store.state.models import AuditRecord

if TYPE_CHECKING:
    from conftest import World


def _records(db: StateDB) -> list[AuditRecord]:
    with db.session(readonly=True) as session:
        return list(session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


def test_writes_are_audited_and_chained(world: World) -> None:
    with world.db.session() as session:
        add_user(session, name="alice", unit="north", role="analyst", password="correct horse")
        add_token(session, unit="south", role="ingest", actor="cli")
    admin = world.scope("centre", Role.ADMIN)
    with world.db.session() as session:
        add_exception(
            session, admin, unit="north", rule_id="r1", conditions={"User": "svc"}, reason="svc"
        )
    records = _records(world.db)
    actions = [r.action for r in records]
    assert actions[:4] == ["unit.add"] * 4
    assert "user.add" in actions and "exception.add" in actions
    assert actions.count("token.add") >= 2  # the test's own and the world's admin token
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    added = next(r for r in records if r.action == "user.add")
    assert added.after == {"name": "alice", "unit": "north", "role": "analyst", "locale": "en"}
    assert "correct horse" not in str(added.after)
    with world.db.session(readonly=True) as session:
        assert verify_chain(session) == (True, None)


def test_a_failed_write_leaves_no_record(world: World) -> None:
    before = len(_records(world.db))
    try:
        with world.db.session() as session:
            add_user(session, name="bob", unit="north", role="viewer", password="correct horse")
            raise RuntimeError("the request failed after the write")
    except RuntimeError:
        pass
    assert len(_records(world.db)) == before


def test_tampering_is_found_at_the_edited_record(world: World) -> None:
    records = _records(world.db)
    target = records[2].id
    with world.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit SET actor = 'mallory' WHERE id = :id"), {"id": target})
    with world.db.session(readonly=True) as session:
        assert verify_chain(session) == (False, target)


def test_removing_a_record_is_found(world: World) -> None:
    records = _records(world.db)
    with world.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit WHERE id = :id"), {"id": records[1].id})
    with world.db.session(readonly=True) as session:
        assert verify_chain(session) == (False, records[2].id)


def test_concurrent_writers_do_not_fork_the_chain(world: World) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(8):
                with world.db.session() as session:
                    append_audit(
                        session,
                        actor=f"w{n}",
                        action="test.write",
                        object_type="test",
                        object_id=i,
                        unit_id=None,
                        before=None,
                        after={"i": i},
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with world.db.session(readonly=True) as session:
        assert verify_chain(session) == (True, None)
        written = session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "test.write")
        )
        distinct_prev = session.scalar(select(func.count(func.distinct(AuditRecord.prev_hash))))
        total = session.scalar(select(func.count()).select_from(AuditRecord))
    assert written == 32
    assert distinct_prev == total  # no two records hang off the same predecessor


def test_audit_listing_is_scoped_to_admins_units(world: World) -> None:
    admin = world.scope("south", Role.ADMIN)
    with world.db.session(readonly=True) as session:
        units = {r.unit_id for r in list_audit(session, admin, limit=1000)}
    assert units == {world.ids["south"]}
