"""The scan pipeline end to end over in-memory fakes: order, workers, spills, correlation,
filters, enrichment, and bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from scanfakes import (
    CountingCorrelator,
    FakeAttackKB,
    FakeEngine,
    FakeRule,
    MemoryInput,
    make_event,
)

from vedette.events import Detection
from vedette.output.records import detection_record
from vedette.pipeline.detector import Detector
from vedette.scan.execute import ScanRequest, ScanResult, execute_scan
from vedette.scan.filters import DetectionFilter

RULES = (
    FakeRule("ps", "PowerShell", "Image", "powershell.exe", "medium", tags=("attack.t1059.001",)),
    FakeRule("dump", "LSASS dump", "Image", "procdump.exe", "high", tags=("attack.t1003.001",)),
    FakeRule("who", "Whoami", "Image", "whoami.exe", "low"),
)
IMAGES = ("powershell.exe", "cmd.exe", "whoami.exe", "procdump.exe", "notepad.exe")


def corpus(files: int = 6, per_file: int = 40) -> dict[str, list]:
    """Files whose events interleave in time, so order must come from merging."""
    out = {}
    for f in range(files):
        path = f"case/host{f % 2}/file{f}.evtx"
        out[path] = [
            make_event(
                path,
                i,
                seconds=(i * 7 + f * 3) % 97,
                host=f"ws{f % 2}",
                Image=IMAGES[(i + f) % len(IMAGES)],
            )
            for i in range(per_file)
        ]
    return out


def scan(
    source: MemoryInput,
    tmp_path: Path,
    *,
    jobs: int = 1,
    detector: Detector | None = None,
    **request: object,
) -> tuple[list[Detection], ScanResult]:
    out: list[Detection] = []
    result = execute_scan(
        ScanRequest(paths=(Path("case"),), jobs=jobs, temp_dir=tmp_path, **request),  # type: ignore[arg-type]
        detector or Detector(engine=FakeEngine(*RULES)),
        source,
        sinks=(out.append,),
    )
    return out, result


def lines(detections: list[Detection]) -> list[dict[str, object]]:
    return [detection_record(d) for d in detections]


def test_detections_come_out_in_time_order_and_counted(tmp_path: Path) -> None:
    out, result = scan(MemoryInput(corpus()), tmp_path)
    expected = sum(
        1
        for events in corpus().values()
        for e in events
        if e.fields["Image"] in {"powershell.exe", "procdump.exe", "whoami.exe"}
    )
    assert len(out) == expected == result.stats.detections
    times = [d.event.timestamp for d in out]
    assert times == sorted(times)  # type: ignore[type-var]
    stats = result.stats
    assert stats.events_read == 240 and stats.events_by_format == {"evtx": 240}
    assert stats.files_by_format == {"evtx": 6}
    assert sum(stats.by_level.values()) == len(out)
    assert {r.rule_id for r in stats.top_rules()} == {"ps", "dump", "who"}
    assert result.readable


def test_one_and_two_workers_give_identical_output(tmp_path: Path) -> None:
    one, _ = scan(MemoryInput(corpus()), tmp_path / "a", jobs=1)
    two, result = scan(MemoryInput(corpus()), tmp_path / "b", jobs=2)
    assert lines(one) == lines(two)
    assert result.stats.jobs == 2


def test_spilling_at_every_level_changes_nothing(tmp_path: Path) -> None:
    plain, _ = scan(MemoryInput(corpus()), tmp_path / "a")
    spilled, _ = scan(MemoryInput(corpus()), tmp_path / "b", jobs=2, run_size=5, spill_threshold=4)
    assert lines(spilled) == lines(plain)
    assert not any((tmp_path / "b").iterdir())  # the spill folder is removed


def test_one_big_file_is_fanned_out_over_the_workers_with_the_same_output(tmp_path: Path) -> None:
    files = corpus(files=3)
    files["case/big.evtx"] = corpus(files=1, per_file=300)["case/host0/file0.evtx"]
    for event in files["case/big.evtx"]:
        event.source = replace(event.source, path="case/big.evtx")  # type: ignore[type-var]
    one, _ = scan(MemoryInput(files), tmp_path / "a", jobs=1)
    fanned, result = scan(MemoryInput(files), tmp_path / "b", jobs=2, fanout_min_bytes=100)
    assert lines(fanned) == lines(one)
    assert result.stats.events_read == 420 and result.stats.files_by_format == {"evtx": 4}


def test_a_reader_failing_during_fan_out_costs_only_that_file(tmp_path: Path) -> None:
    files = corpus(files=3)
    files["case/big.evtx"] = corpus(files=1, per_file=300)["case/host0/file0.evtx"]
    source = MemoryInput(files, explode={"case/big.evtx"})
    out, result = scan(source, tmp_path, jobs=2, fanout_min_bytes=100)
    assert result.stats.skipped_by_reason == {"internal-error": 1}
    assert result.stats.events_read == 120 and out


def test_filters_apply_to_output_but_correlation_sees_everything(tmp_path: Path) -> None:
    correlator = CountingCorrelator("who", threshold=5)
    detector = Detector(engine=FakeEngine(*RULES), correlator=correlator)
    flt = DetectionFilter.build(min_level="high")
    out, result = scan(MemoryInput(corpus()), tmp_path, detector=detector, filter=flt)
    whoami = sum(
        1 for events in corpus().values() for e in events if e.fields["Image"] == "whoami.exe"
    )
    assert len(correlator.seen) == whoami  # low-level base detections still reached it
    assert correlator.times == sorted(correlator.times)  # type: ignore[type-var]
    assert {d.level for d in out} == {"high"}
    assert sum(d.kind == "correlation" for d in out) == whoami // 5
    assert result.stats.base_detections > result.stats.detections
    times = [d.event.timestamp for d in out]
    assert times == sorted(times)  # type: ignore[type-var]


def test_generate_false_keeps_base_rule_out_of_output(tmp_path: Path) -> None:
    correlator = CountingCorrelator("who", threshold=3, suppress=True)
    detector = Detector(
        engine=FakeEngine(*RULES),
        correlator=correlator,
        suppressed_rule_ids=correlator.suppressed_rule_ids,
    )
    out, _ = scan(MemoryInput(corpus()), tmp_path, detector=detector)
    assert not any(d.rule_id == "who" for d in out)
    assert any(d.rule_id == "corr-who" for d in out)


def test_attack_enrichment_reaches_output_stats_and_filters(tmp_path: Path) -> None:
    detector = Detector(engine=FakeEngine(*RULES), attack_kb=FakeAttackKB())
    flt = DetectionFilter.build(attack=["credential-access"])
    out, result = scan(MemoryInput(corpus()), tmp_path, detector=detector, filter=flt)
    assert out and {d.rule_id for d in out} == {"dump"}
    assert out[0].attack[0].name == "LSASS Memory"
    assert result.stats.by_tactic == {"credential-access": len(out)}


@pytest.mark.parametrize("jobs", [1, 2])
def test_bad_files_are_reported_and_the_rest_scanned(tmp_path: Path, jobs: int) -> None:
    files = corpus(files=3)
    source = MemoryInput(
        files,
        broken={"case/garbage.bin": "not-a-log", "case/cut.evtx": "evtx-chunk"},
        explode={"case/host0/file0.evtx"},
    )
    out, result = scan(source, tmp_path, jobs=jobs)
    stats = result.stats
    assert stats.skipped_by_reason == {"not-a-log": 1, "evtx-chunk": 1, "internal-error": 1}
    assert {w.path for w in stats.skipped_examples} == {
        "case/garbage.bin",
        "case/cut.evtx",
        "case/host0/file0.evtx",
    }
    assert stats.events_read == 80  # the two good files
    assert out and all(
        d.event.source and d.event.source.path != "case/host0/file0.evtx" for d in out
    )
    assert result.readable


def test_nothing_readable_is_reported_as_such(tmp_path: Path) -> None:
    source = MemoryInput({}, broken={"case/a.bin": "not-a-log"})
    out, result = scan(source, tmp_path, jobs=2)
    assert out == [] and not result.readable
    assert result.stats.records_skipped == 1
