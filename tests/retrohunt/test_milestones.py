"""Retro-hunt milestones: unit-days and units read after each file, in the store's order."""

from __future__ import annotations

from pathlib import Path

from vedette.server.retrohunt import Milestones


def _file(unit: str, day: str, part: int) -> tuple[str, Path]:
    return unit, Path(f"/events/unit={unit}/day={day}/part-{part:016d}-{part:016d}.parquet")


def test_a_unit_day_is_read_with_its_last_file_and_a_unit_with_its_last_day() -> None:
    files = [
        _file("a", "2026-01-01", 1),
        _file("a", "2026-01-01", 2),
        _file("a", "2026-01-02", 3),
        _file("b", "2026-01-01", 4),
        _file("b", "2026-01-03", 5),
        _file("b", "2026-01-03", 6),
    ]
    found = Milestones.of(files, ["a", "b", "c"])  # c has no file in the range
    assert found.days_total == 4
    assert [found.days_done(n) for n in range(7)] == [0, 0, 1, 2, 3, 3, 4]
    assert [found.units_done(n) for n in range(7)] == [1, 1, 1, 2, 2, 2, 3]


def test_no_file_at_all() -> None:
    found = Milestones.of([], ["a", "b"])
    assert (found.days_total, found.days_done(0), found.units_done(0)) == (0, 0, 2)
