"""Time order of detections: the sort key, and the external sorter that spills to disk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scanfakes import T0, make_event

from vedette.events import Detection
from vedette.scan.ordering import ExternalSorter, detection_sort_key, event_time_key, write_run


def detection(rule: str, path: str, record: int, seconds: float) -> Detection:
    return Detection(rule, rule.upper(), "high", make_event(path, record, seconds=seconds))


def test_key_orders_by_time_then_rule_then_path_then_record() -> None:
    items = [
        detection("b", "x.evtx", 1, 5),
        detection("a", "y.evtx", 2, 5),
        detection("a", "x.evtx", 9, 5),
        detection("a", "x.evtx", 3, 5),
        detection("z", "a.evtx", 1, 1),
    ]
    ordered = sorted(items, key=detection_sort_key)
    got = [
        (d.rule_id, d.event.source.path, d.event.source.record_id)
        for d in ordered
        if d.event.source
    ]
    assert got == [
        ("z", "a.evtx", 1),
        ("a", "x.evtx", 3),
        ("a", "x.evtx", 9),
        ("a", "y.evtx", 2),
        ("b", "x.evtx", 1),
    ]


def test_undated_detections_sort_last_and_naive_times_count_as_utc() -> None:
    undated = detection("a", "x", 1, 0)
    undated.event.timestamp = None
    dated = detection("b", "x", 2, 0)
    assert sorted([undated, dated], key=detection_sort_key)[0] is dated
    naive = datetime(2024, 3, 1, 12, 0)
    assert event_time_key(naive) == event_time_key(naive.replace(tzinfo=UTC))
    assert event_time_key(T0 + timedelta(microseconds=1)) == event_time_key(T0) + 1


def shuffled(count: int, seed: int = 7) -> list[Detection]:
    rng = random.Random(seed)
    items = [
        detection(f"r{rng.randrange(5)}", f"f{rng.randrange(3)}", i, rng.randrange(50))
        for i in range(count)
    ]
    rng.shuffle(items)
    return items


def keys(items: list[Detection]) -> list[object]:
    return [detection_sort_key(d) for d in items]


def test_sorter_spills_runs_and_merges_in_order(tmp_path: Path) -> None:
    items = shuffled(250)
    sorter = ExternalSorter(tmp_path, run_size=40)
    sorter.extend(items)
    assert sorter.spilled_runs == 6
    assert sorter.count == 250
    out = list(sorter)
    assert keys(out) == sorted(keys(items))
    assert list(tmp_path.iterdir()) == []  # runs are removed once merged


def test_sorter_merges_in_passes_beyond_its_fan_in(tmp_path: Path) -> None:
    items = shuffled(300, seed=3)
    sorter = ExternalSorter(tmp_path, run_size=2)  # 150 runs: more than one merge pass
    sorter.extend(items)
    assert sorter.spilled_runs == 150
    assert keys(list(sorter)) == sorted(keys(items))
    assert list(tmp_path.iterdir()) == []


def test_sorter_adopts_runs_written_elsewhere(tmp_path: Path) -> None:
    first, second = shuffled(30, seed=1), shuffled(20, seed=2)
    sorter = ExternalSorter(tmp_path, run_size=1000)
    sorter.adopt_run(write_run(list(first), tmp_path), len(first))
    sorter.extend(second)
    assert sorter.count == 50
    out = list(sorter)
    assert keys(out) == sorted(keys(first + second))
    assert out[0].event.fields == (sorted(first + second, key=detection_sort_key)[0]).event.fields
