"""Positions and unit counters: upserts in the caller's transaction; silent units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from vedette.store.state import (
    Role,
    add_received,
    add_stored,
    get_position,
    list_units,
    mark_silent_alerted,
    set_position,
    silent_units,
)
from vedette.store.state.models import IngestRate
from vedette.store.state.positions import ingest_rates
from vedette.store.state.units import set_silent_after

if TYPE_CHECKING:
    from conftest import World

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_positions_upsert_and_roll_back(world: World) -> None:
    with world.db.session() as session:
        assert get_position(session, "pipeline") == 0
        set_position(session, "pipeline", 10)
        set_position(session, "pipeline", 2**40)
    with world.session() as session:
        set_position(session, "pipeline", 99)
        session.rollback()
    with world.db.session() as session:
        assert get_position(session, "pipeline") == 2**40


def test_counters_accumulate_and_show_in_units(world: World) -> None:
    north, south = world.ids["north"], world.ids["south"]
    with world.db.session() as session:
        add_received(session, {north: (5, T0), south: (1, T0)})
        add_stored(session, {north: (4, T0 - timedelta(minutes=3))})
    with world.db.session() as session:
        add_received(session, {north: (2, T0 + timedelta(seconds=5))})
        add_stored(session, {north: (3, T0 - timedelta(minutes=9)), south: (1, None)})
    admin = world.scope("centre", Role.ADMIN)
    with world.db.session() as session:
        units = {u.name: u for u in list_units(session, admin)}
    assert (units["north"].events_received, units["north"].events_stored) == (7, 7)
    assert units["north"].last_event_at == T0 - timedelta(minutes=3)  # the latest, kept
    assert units["north"].last_received_at == T0 + timedelta(seconds=5)
    assert (units["south"].events_received, units["south"].last_event_at) == (1, None)
    assert units["centre"].events_received == 0


def test_silent_units(world: World) -> None:
    north, south, north_a = world.ids["north"], world.ids["south"], world.ids["north-a"]
    admin = world.scope("centre", Role.ADMIN)
    with world.db.session() as session:
        for name in ("north", "south", "centre"):
            set_silent_after(session, admin, name, 600)
        add_received(
            session, {north: (1, T0), south: (1, T0 + timedelta(minutes=8)), north_a: (1, T0)}
        )
    later = T0 + timedelta(minutes=11)
    with world.db.session() as session:
        # north: quiet 11 min > 10; south: 3 min; centre: never sent; north-a: no threshold.
        assert [(s.name, s.last_received_at) for s in silent_units(session, later)] == [
            ("north", T0)
        ]
        mark_silent_alerted(session, north)
    with world.db.session() as session:
        assert silent_units(session, later) == []
        assert [s.name for s in silent_units(session, later + timedelta(minutes=10))] == ["south"]
        # Heard from again: the flag clears, and a new silence will be alerted.
        add_received(session, {north: (1, later)})
    with world.db.session() as session:
        names = [s.name for s in silent_units(session, later + timedelta(minutes=20))]
    assert names == ["north", "south"]


def test_ingest_rates_over_the_last_minute_and_five(world: World) -> None:
    north, south = world.ids["north"], world.ids["south"]
    now = datetime(2026, 3, 1, 12, 10, 5, tzinfo=UTC)  # 5 s into a ten-second bucket
    with world.db.session() as session:
        # Three commits of one bucket add up; older arrivals land in their own buckets.
        add_received(session, {north: (30, now - timedelta(seconds=3))})
        add_received(session, {north: (30, now - timedelta(seconds=1)), south: (7, now)})
    with world.db.session() as session:
        add_received(session, {north: (60, now - timedelta(seconds=3))})
        add_received(session, {north: (600, now - timedelta(seconds=200))})
        add_received(session, {north: (9_999, now - timedelta(minutes=20))})  # outside both
    with world.db.session() as session:
        rates = ingest_rates(session, [north, south, world.ids["centre"]], now)
    # The last minute counts from the bucket holding now - 60 s (12:09:00): 65 s of arrivals.
    assert rates[north][0] == 120 / 65
    # Five minutes from 12:05:00: 305 s.
    assert rates[north][1] == 720 / 305
    assert rates[south] == (7 / 65, 7 / 305)
    assert rates[world.ids["centre"]] == (0.0, 0.0)


def test_ingest_rate_buckets_older_than_an_hour_are_pruned(world: World) -> None:
    north = world.ids["north"]
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a pruning bucket (every 300 s)
    with world.db.session() as session:
        add_received(session, {north: (5, start - timedelta(hours=2))})
        add_received(session, {north: (5, start - timedelta(minutes=30))})
    with world.db.session() as session:
        add_received(session, {north: (1, start)})
    with world.db.session() as session:
        buckets = sorted(session.scalars(select(IngestRate.bucket)))
    assert buckets == [int((start - timedelta(minutes=30)).timestamp()), int(start.timestamp())]
