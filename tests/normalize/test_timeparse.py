"""Timestamps of every shape to aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vedette.normalize.timeparse import from_epoch, parse_timestamp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-08-14T14:06:44.8498851Z", datetime(2019, 8, 14, 14, 6, 44, 849885, tzinfo=UTC)),
        ("2020-10-18 10:56:18.799", datetime(2020, 10, 18, 10, 56, 18, 799000, tzinfo=UTC)),
        ("2018-07-05T15:01:09.820360-0400", datetime(2018, 7, 5, 19, 1, 9, 820360, tzinfo=UTC)),
        ("2003-10-11T22:14:15.003-07:00", datetime(2003, 10, 12, 5, 14, 15, 3000, tzinfo=UTC)),
        ("2019-08-14T14:06:44.8498851Z UTC", datetime(2019, 8, 14, 14, 6, 44, 849885, tzinfo=UTC)),
        (1604996384.965, datetime(2020, 11, 10, 8, 19, 44, 965000, tzinfo=UTC)),
        ("1521911720.5", datetime(2018, 3, 24, 17, 15, 20, 500000, tzinfo=UTC)),
        (1521911720500, datetime(2018, 3, 24, 17, 15, 20, 500000, tzinfo=UTC)),
    ],
)
def test_shapes(value: object, expected: datetime) -> None:
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize("value", [None, "", "garbage", "nan", "inf", True, "15:16:01", [1]])
def test_not_timestamps(value: object) -> None:
    assert parse_timestamp(value) is None


def test_epoch_out_of_range() -> None:
    assert from_epoch(1e30) is None
