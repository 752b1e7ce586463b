"""Folding a commit's detections with record_detections: the same alerts as one call per
fingerprint, and grouping keys kept for incidents (also keys added by later detections)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vedette.store.state import incidents, record_detection
from vedette.store.state.alert_keys import AlertKey, grouping_keys, key_hash
from vedette.store.state.alerts import DetectionFold, record_detections
from vedette.store.state.models import Alert

if TYPE_CHECKING:
    from conftest import World

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _fold(world: World, unit: str, fp: str, first: datetime, n: int, **extra: Any) -> DetectionFold:
    return DetectionFold(
        unit_id=world.ids[unit],
        fingerprint=fp,
        kind="sigma",
        rule_id="r1",
        rule_title="Rule one",
        level=extra.pop("level", "medium"),
        first=first,
        last=extra.pop("last", first),
        n=n,
        host=extra.pop("host", "pc1"),
        **extra,
    )


def _rows(world: World) -> list[tuple[int, str, int, datetime, datetime]]:
    with world.db.session(readonly=True) as session:
        rows = session.execute(
            select(
                Alert.unit_id, Alert.fingerprint, Alert.count, Alert.first_seen, Alert.last_seen
            ).order_by(Alert.id)
        ).all()
    return [
        (u, f, c, first.replace(tzinfo=UTC), last.replace(tzinfo=UTC))
        for u, f, c, first, last in rows
    ]


def test_batch_counts_like_one_call_per_fingerprint(world: World) -> None:
    with world.db.session() as session:
        new = record_detections(
            session,
            [
                _fold(world, "north", "a" * 64, T0, 3, last=T0 + timedelta(minutes=2)),
                _fold(world, "south", "a" * 64, T0, 1),
                _fold(world, "north", "b" * 64, T0, 2),
            ],
        )
        session.commit()
    assert len(new) == 3
    with world.db.session() as session:
        new = record_detections(
            session,
            [
                # Within the window of the open alert: counted on it, times widened.
                _fold(world, "north", "a" * 64, T0 - timedelta(minutes=1), 4),
                # Past the window: a new alert.
                _fold(world, "north", "b" * 64, T0 + timedelta(hours=2), 1),
                _fold(world, "south", "c" * 64, T0, 5),
            ],
        )
        session.commit()
    assert sorted(a.fingerprint for a in new) == ["b" * 64, "c" * 64]
    north, south = world.ids["north"], world.ids["south"]
    assert _rows(world) == [
        (north, "a" * 64, 7, T0 - timedelta(minutes=1), T0 + timedelta(minutes=2)),
        (south, "a" * 64, 1, T0, T0),
        (north, "b" * 64, 2, T0, T0),
        (north, "b" * 64, 1, T0 + timedelta(hours=2), T0 + timedelta(hours=2)),
        (south, "c" * 64, 5, T0, T0),
    ]


def test_keys_are_kept_and_later_observables_group(world: World) -> None:
    ioc = [{"type": "ip", "field": "DestinationIp", "value": "198.51.100.7"}]
    with world.db.session() as session:
        (plain,) = record_detections(session, [_fold(world, "north", "d" * 64, T0, 1)])
        stored = set(session.scalars(select(AlertKey.key).where(AlertKey.alert_id == plain.id)))
        assert stored == {key_hash(k) for k in grouping_keys(plain)} == {key_hash(("host", "pc1"))}
        # A later detection of the same fingerprint brings an observable: a key of its own now.
        record_detections(session, [_fold(world, "north", "d" * 64, T0, 1, observables=ioc)])
        session.commit()
    with world.db.session() as session:
        high, _ = record_detection(
            session,
            unit_id=world.ids["north"],
            fingerprint="e" * 64,
            kind="intel",
            rule_id="intel",
            rule_title="Known bad address",
            level="high",
            when=T0 + timedelta(minutes=5),
            host="other-host",
            observables=ioc,
        )
        incident = incidents.group_alert(session, high.id)
        assert incident is not None
        # The new incident took in the first alert through the observable added later only.
        assert incidents.incident_of_alert(session, plain.id) == incident.id
        session.commit()


def test_a_burst_of_new_alerts_chains_one_audit_record_each_in_id_order(world: World) -> None:
    # _open_alerts writes the burst's audit records in one executemany: the chain must come out
    # exactly as one append per alert would make it, before and after a single append.
    from vedette.store.state.audit import append_audit, verify_chain
    from vedette.store.state.models import AuditRecord

    with world.db.session() as session:
        append_audit(session, actor="t", action="before", object_type="x", object_id=1,
                     unit_id=None, before=None, after=None)  # fmt: skip
        new = record_detections(
            session,
            [
                _fold(
                    world,
                    "north" if i % 2 else "south",
                    f"{i:064x}",
                    T0,
                    1,
                    host=f"pc{i}",
                    observables=[{"type": "ip", "field": "f", "value": f"8.8.4.{i}"}],
                )
                for i in range(120)
            ],
        )
        append_audit(session, actor="t", action="after", object_type="x", object_id=2,
                     unit_id=None, before=None, after=None)  # fmt: skip
        session.commit()
    assert len(new) == 120
    with world.db.session(readonly=True) as session:
        assert verify_chain(session) == (True, None)
        records = session.scalars(select(AuditRecord).order_by(AuditRecord.id)).all()
        actions = [r.action for r in records if r.actor in ("t", "pipeline")]
        assert actions[-122:] == ["before"] + ["alert.create"] * 120 + ["after"]
        created = [r for r in records if r.action == "alert.create"][-120:]
        assert sorted(int(r.object_id) for r in created) == sorted(a.id for a in new)
        by_alert = {a.id: a for a in new}
        assert all(r.unit_id == by_alert[int(r.object_id)].unit_id for r in created)
        keys = set(session.execute(select(AlertKey.alert_id, AlertKey.key)).all())
    for alert in new:
        wanted = {key_hash(k) for k in grouping_keys(alert)}
        assert wanted and {(alert.id, h) for h in wanted} <= keys
