"""The worker processes' counters in the state store (scale-out /metrics): the sum over the
workers only grows, whether a worker stops, dies, or is folded away long after it died."""

from __future__ import annotations

from vedette.store.state.db import StateDB
from vedette.store.state.duties import RoleMember, renew_member
from vedette.store.state.worker_figures import FORGET_SECONDS, publish, retire, totals


def _figures(events: int, lag: float, high: int = 0) -> dict[str, object]:
    return {
        "events": events,
        "alerts_created": events // 10,
        "detections_by_level": {"high": high},
        "unclassified": {"branch-a": 1},
        "lag_seconds": lag,
    }


def test_counts_are_kept_when_workers_stop_die_and_are_folded(db: StateDB) -> None:
    now = 1_000_000.0
    with db.session() as session:
        publish(session, "w1", now, 10.0, _figures(100, 2.5, high=3))
        publish(session, "w2", now, 10.0, _figures(50, 0.5, high=1))
    with db.session() as session:
        seen = totals(session, now + 1)
    assert seen.live == 2
    assert seen.counters == {"events": 150, "alerts_created": 15}
    assert seen.by_key == {"detections_by_level": {"high": 4}, "unclassified": {"branch-a": 2}}
    assert seen.gauges == {"lag_seconds": 2.5}

    # w1 stops cleanly with 20 more events: folded into the retired row at once.
    with db.session() as session:
        retire(session, "w1", _figures(120, 0.0, high=3))
    with db.session() as session:
        seen = totals(session, now + 2)
        assert session.get(RoleMember, "w1") is None
    assert seen.live == 1 and seen.counters["events"] == 170
    assert seen.gauges == {"lag_seconds": 0.5}

    # w2 dies (no more publications): its counts stay; the scheduler's prune leaves it.
    later = now + 5 * FORGET_SECONDS
    with db.session() as session:
        renew_member(session, "scheduler-1", "scheduler", later, 3.0, {})
    with db.session() as session:
        seen = totals(session, later)
    assert seen.live == 0 and seen.counters["events"] == 170 and seen.gauges == {}

    # A new worker publishes long after: w2's row is folded away, the sum is the same.
    with db.session() as session:
        publish(session, "w3", later, 10.0, _figures(7, 1.0))
    with db.session() as session:
        seen = totals(session, later + 1)
        assert session.get(RoleMember, "w2") is None
    assert seen.live == 1 and seen.counters == {"events": 177, "alerts_created": 17}
    assert seen.by_key["detections_by_level"] == {"high": 4}
    assert seen.by_key["unclassified"] == {"branch-a": 3}
